"""Dispatch overhead per task: make + submit + collect, without the task's own command.

    .venv/bin/python benchmarks/dispatch.py [--sizes 1 100 1000] [--no-slurm]

For each size N, N task folders are written (make), run through
:func:`dpgen_lite.dispatch.run_tasks` with the command ``true`` (submit, poll, download),
and each task's output file is read back (collect).  The wall time of the three, divided
by N, is the overhead per task.  Machines:

* ``local``: the embedded machine (Shell batch, LazyLocal context, one job per core);
* ``slurm``: a real one-node Slurm cluster started here (``tests/hpc.py``, needs root and
  slurm-wlm + munge), LocalContext (files copied to a remote root), one job per core;
* ``slurm-1``: the same, one job per task (``group_size`` 1: one ``sbatch`` per task),
  only up to 100 tasks (1000 single-task jobs on a two-core node take many minutes).

``check_interval`` is 1 s, so a run's wall time includes up to one polling interval of
waiting; that is part of what a user pays per step, so it is kept in the figure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def stage(batch: str, context: str, group_size: int, remote_root: str | None = None) -> dict:
    """A machine.json stage section (check_interval 1 s)."""
    machine = {"batch_type": batch, "context_type": context, "local_root": "."}
    if remote_root:
        machine["remote_root"] = remote_root
    return {"machine": machine, "check_interval": 1,
            "resources": {"number_node": 1, "cpu_per_node": 1, "gpu_per_node": 0, "queue_name": "",
                          "group_size": group_size, "envs": {}}}


def measure(conf: dict, n: int, scratch: Path) -> float:
    """Seconds for make + run + collect of ``n`` trivial tasks on ``conf``."""
    from dpgen_lite.dispatch import TaskSpec, run_tasks
    work = Path(tempfile.mkdtemp(dir=scratch))
    t0 = time.perf_counter()
    base = work / "step"
    tasks = []
    for i in range(n):
        (base / f"task.{i:06d}").mkdir(parents=True)
        (base / f"task.{i:06d}" / "in.txt").write_text(str(i))
        tasks.append(TaskSpec(path=f"task.{i:06d}", command="cp in.txt out.txt", forward_files=["in.txt"],
                              backward_files=["out.txt"]))
    run_tasks(conf, work, "step", tasks)
    got = sum(int((base / t.path / "out.txt").read_text()) for t in tasks)
    assert got == n * (n - 1) // 2
    elapsed = time.perf_counter() - t0
    shutil.rmtree(work)
    return elapsed


def main() -> None:
    """Print a table: machine, tasks, jobs, wall time (s), overhead per task (ms)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--no-slurm", action="store_true", help="only the local machine")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="dpgen_bench_dispatch_", dir="/tmp"))
    scratch.chmod(0o755)
    os.environ.setdefault("HOME", str(scratch))
    import logging
    logging.getLogger("dpgen_lite").setLevel(logging.WARNING)
    cores = os.cpu_count() or 1
    rows = []
    cluster = None
    try:
        machines = [("local", lambda n: stage("Shell", "LazyLocalContext", 0), lambda n: min(n, cores))]
        if not args.no_slurm:
            from tests.hpc import Cluster
            cluster = Cluster().start()
            remote = str(scratch / "remote")
            machines += [
                ("slurm", lambda n: stage("Slurm", "LocalContext", -(-n // cores), remote), lambda n: min(n, cores)),
                ("slurm-1", lambda n: stage("Slurm", "LocalContext", 1, remote), lambda n: n),
            ]
        for name, conf, n_jobs in machines:
            for n in args.sizes:
                if name == "slurm-1" and n > 100:
                    continue
                t = measure(conf(n), n, scratch)
                rows.append((name, n, n_jobs(n), t, 1000 * t / n))
                print(f"  {name:8s} {n:5d} tasks: {t:7.2f} s", file=sys.stderr, flush=True)
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{'machine':10s}{'tasks':>7s}{'jobs':>7s}{'wall (s)':>11s}{'per task (ms)':>16s}")
    for name, n, jobs, t, per in rows:
        print(f"{name:10s}{n:7d}{jobs:7d}{t:11.2f}{per:16.1f}")


if __name__ == "__main__":
    main()
