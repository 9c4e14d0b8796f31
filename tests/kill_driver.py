"""``dpgen`` that SIGKILLs itself inside one step, before the step is recorded.

Environment: ``DPGEN_KILL_AT="ITER STEP WHEN"``, ``WHEN`` one of ``start``, ``end`` or a
number of seconds into the step.  A kill from another process can land after the step
it aimed at (a step of milliseconds, or MD that ends sooner than the draw); this one
cannot: a timer kills the process SECONDS into the step, and a step that ends sooner is
killed at its end.  Before dying it prints ``killed at start|end|inside`` on stderr.
Used by ``tests/test_loop.py``.
"""

import os
import signal
import sys
import threading

from dpgen_lite import cli, scheduler


def _die(where: str) -> None:
    print(f"killed at {where}", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def _killing(index: int, step, target: tuple[int, int], when: str):
    def run(ctx, iteration):
        if (iteration, index) != target:
            return step(ctx, iteration)
        if when == "start":
            _die("start")
        if when != "end":
            threading.Timer(float(when), _die, ("inside",)).start()
        step(ctx, iteration)
        _die("end")
    return run


if __name__ == "__main__":
    it, st, when = os.environ["DPGEN_KILL_AT"].split()
    scheduler.STEPS = tuple(_killing(k, f, (int(it), int(st)), when) for k, f in enumerate(scheduler.STEPS))
    sys.exit(cli.main())
