"""``dpgen`` that SIGKILLs itself at the start or at the end of one step (before it is recorded).

Environment: ``DPGEN_KILL_AT="ITER STEP start|end"``.  Steps that write files without
waiting for jobs take milliseconds, too short for a kill from outside to land in; this
puts the kill inside them.  Used by ``tests/test_loop.py``.
"""

import os
import signal
import sys

from dpgen_lite import cli, scheduler


def _killing(index: int, step, target: tuple[int, int], when: str):
    def run(ctx, iteration):
        hit = (iteration, index) == target
        if hit and when == "start":
            os.kill(os.getpid(), signal.SIGKILL)
        step(ctx, iteration)
        if hit and when == "end":
            os.kill(os.getpid(), signal.SIGKILL)
    return run


if __name__ == "__main__":
    it, st, when = os.environ["DPGEN_KILL_AT"].split()
    scheduler.STEPS = tuple(_killing(k, f, (int(it), int(st)), when) for k, f in enumerate(scheduler.STEPS))
    sys.exit(cli.main())
