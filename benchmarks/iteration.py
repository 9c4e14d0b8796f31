"""Time one quickstart iteration (examples/cu_emt) step by step, and the engine's own overhead.

    .venv/bin/python benchmarks/iteration.py [--keep DIR]

Runs init_bulk, then steps 0-8 of iteration 0 of the quickstart in a scratch folder.
The engine's overhead is everything that is not training, MD or labelling: the make,
select and post steps, plus dpdispatcher's cost of the run steps, measured in the same
process by dispatching the same number of tasks with the command ``true``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    """Print a table: step, wall time (s), share of the iteration; then the overhead figures."""
    from dpgen_lite.cli import load_run_param
    from dpgen_lite.context import Context
    from dpgen_lite.dispatch import TaskSpec, run_tasks
    from dpgen_lite.init_bulk import init_bulk
    from dpgen_lite.record import STEP_NAMES
    from dpgen_lite.scheduler import STEPS
    from dpgen_lite.schema import init_bulk_args, load_file, normalize

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", help="run in this folder and keep it")
    args = parser.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="dpgen_bench_"))
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(ROOT / "examples" / "cu_emt", work)

    t0 = time.perf_counter()
    init_param = normalize(init_bulk_args(), load_file(work / "init.json"), "init.json")
    init_bulk(init_param, {}, work)
    t_init = time.perf_counter() - t0

    ctx = Context(load_run_param(str(work / "param.json"), work), {}, work)
    times = []
    for step, func in enumerate(STEPS):
        t0 = time.perf_counter()
        func(ctx, 0)
        times.append(time.perf_counter() - t0)

    # dpdispatcher's own cost of each run step: same task count, trivial command
    dispatch = {}
    for step, stage, folder in ((1, "train", "00.train"), (4, "model_devi", "01.model_devi"), (7, "fp", "02.fp")):
        n = len([p for p in ctx.path(0, folder).iterdir() if p.is_dir() and p.name[0] in "0123456789t"])
        scratch = work / f"bench.{folder}"
        tasks = []
        for k in range(n):
            (scratch / f"task.{k:06d}").mkdir(parents=True)
            tasks.append(TaskSpec(path=f"task.{k:06d}", command="true"))
        t0 = time.perf_counter()
        run_tasks(ctx.stage_conf(stage), work, scratch.name, tasks)
        dispatch[step] = (n, time.perf_counter() - t0)

    total = sum(times)
    print(f"init_bulk: {t_init:.1f} s\n")
    print(f"{'step':<18}{'wall (s)':>10}{'share':>8}")
    for name, t in zip(STEP_NAMES, times):
        print(f"{name:<18}{t:>10.2f}{t / total:>8.1%}")
    print(f"{'iteration':<18}{total:>10.2f}")
    own_steps = sum(t for i, t in enumerate(times) if i not in dispatch)
    disp = sum(t for _, t in dispatch.values())
    print("\ndispatch cost of the run steps (same task count, command `true`):")
    for step, (n, t) in dispatch.items():
        print(f"  {STEP_NAMES[step]:<16}{n:>4} tasks {t:>7.2f} s  ({t / n:.3f} s/task)")
    overhead = own_steps + disp
    print(f"\nengine overhead: {overhead:.2f} s = {overhead / total:.1%} of the iteration "
          f"(make/select/post {own_steps:.2f} s, dispatch {disp:.2f} s)")
    print(f"training + MD + labelling: {total - overhead:.2f} s")
    print(json.dumps({"iteration_s": total, "overhead_s": overhead, "overhead_ratio": overhead / total,
                      "steps_s": dict(zip(STEP_NAMES, times))}))
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
