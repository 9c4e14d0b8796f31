"""Selection at scale: dpgen_lite's streaming select step against DP-GEN's reader, same files, same run.

    .venv/bin/python benchmarks/selection.py [--tasks 1000] [--frames 10000] [--systems 4]
                                             [--dir DIR] [--keep] [--small]

Writes ``tasks`` model_devi.out files of ``frames`` rows each in deepmd-kit's format
(``iter.000000/01.model_devi/task.SSS.TTTTTT/model_devi.out``, 127 bytes a row: 1000 x 10000
is 1.2 GiB of text) in a scratch folder (``--dir``, default under the system's temp folder),
deleted at the end unless ``--keep``.  ``--small`` is 100 tasks x 2000 frames.  The force
deviations are log-normal (median 0.03 eV/Å), with trust levels 0.05 / 0.15 eV/Å: about 77 %
accurate, 22 % candidates, 1 % failed.

Measured one after the other, after one untimed read of every file (so that every reader finds
them in the page cache):

* ``dpgen_lite select``: :func:`dpgen_lite.select.stage.select`, the real step (streaming reader,
  per-block classification, candidate / rest files, ``selection.json``);
* ``DP-GEN select``: DP-GEN 0.14's ``_read_model_devi_file`` (``np.loadtxt`` of the whole file)
  and ``_select_by_model_devi_standard``'s frame-by-frame loop, then its shuffle and its three
  ``*.shuffled.SSS.out`` files (``detailed_report_make_fp``, on by default), re-implemented
  here as DP-GEN writes them;
* the two readers alone: :func:`dpgen_lite.select.model_devi.iter_model_devi` and
  ``np.loadtxt`` per file.

Each measurement runs in a fresh Python process running this file (``--measure``), after
its imports and a warm-up call on a one-task folder: its peak resident set (``VmHWM``, reset
through ``/proc/self/clear_refs``) minus its resident set at the start is the memory the call
needs, untouched by what another measurement left in the allocator (elsewhere than Linux:
``tracemalloc``'s peak, which slows the Python loops).  Both selections must find the same counts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np

HEADER = ("#       step         max_devi_v         min_devi_v         avg_devi_v         max_devi_f"
          "         min_devi_f         avg_devi_f")
F_LO, F_HI = 0.05, 0.15
TRJ_FREQ = 10
MEASURES = ("dpgen_lite reader (iter_model_devi)", "DP-GEN reader (np.loadtxt per file)",
            "dpgen_lite select (streaming)", "DP-GEN select (loadtxt + frame loop)")


def generate(root: Path, n_tasks: int, n_frames: int, n_systems: int, seed: int = 0) -> list[tuple[int, Path]]:
    """Write the model_devi.out files; return ``(sys_idx, task folder)`` in task order.

    A pool of up to 16 different files is formatted once and written under every task name
    (distinct files with the same content), which keeps the generation to the disk's speed.
    """
    rng = np.random.default_rng(seed)
    md = root / "iter.000000" / "01.model_devi"
    pool = []
    for _ in range(min(n_tasks, 16)):
        devi_f = rng.lognormal(np.log(0.03), 0.7, n_frames)
        devi_v = rng.lognormal(np.log(0.01), 0.7, n_frames)
        cols = [np.arange(n_frames) * TRJ_FREQ, devi_v, devi_v * 0.3, devi_v * 0.6, devi_f, devi_f * 0.3,
                devi_f * 0.6]
        fmt = "%12d" + " %18.6e" * 6 + "\n"
        body = "".join(fmt % row for row in zip(*cols))
        pool.append((HEADER + "\n" + body).encode())
    tasks = []
    per_system = -(-n_tasks // n_systems)
    for k in range(n_tasks):
        sys_idx, counter = divmod(k, per_system)
        folder = md / f"task.{sys_idx:03d}.{counter:06d}"
        folder.mkdir(parents=True)
        (folder / "model_devi.out").write_bytes(pool[k % len(pool)])
        tasks.append((sys_idx, folder))
    return tasks


def systems_of(root: Path) -> dict[int, list[Path]]:
    """The task folders of iteration 0 by system index."""
    systems: dict[int, list[Path]] = {}
    for task in sorted((root / "iter.000000" / "01.model_devi").glob("task.*")):
        systems.setdefault(int(task.name.split(".")[1]), []).append(task)
    return systems


def run_one(name: str, root: Path):
    """Measurement ``name`` (one of :data:`MEASURES`) on the files of ``root``; its result."""
    systems = systems_of(root)
    files = [t / "model_devi.out" for tasks in systems.values() for t in tasks]
    if name == MEASURES[0]:
        return read_lite(files)
    if name == MEASURES[1]:
        return read_dpgen(files)
    if name == MEASURES[2]:
        summary = lite_select(root, len(systems))
        return {s: [v[k] for k in ("accurate", "candidate", "failed")] for s, v in summary["systems"].items()}
    out = root / "dpgen_fp"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    counters = dpgen_select(root, systems, out)
    return {f"{s:03d}": [c[k] for k in ("accurate", "candidate", "failed")] for s, c in counters.items()}


def measure(name: str, root: Path, warmup: Path) -> dict:
    """In this (fresh) process: warm up on ``warmup``, then time ``name`` on ``root``; return
    ``{"result", "seconds", "mib"}`` (peak memory above the start, MiB)."""
    run_one(name, warmup)  # lazy imports and first-call costs: not measured
    linux = Path("/proc/self/clear_refs").exists()
    if linux:
        Path("/proc/self/clear_refs").write_text("5")
        start = _status("VmRSS")
    else:
        tracemalloc.start()
    t0 = time.perf_counter()
    result = run_one(name, root)
    seconds = time.perf_counter() - t0
    if linux:
        mib = (_status("VmHWM") - start) / 1024
    else:
        mib = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return {"result": result, "seconds": seconds, "mib": mib}


def _status(key: str) -> int:
    """A ``/proc/self/status`` figure, kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def dpgen_select(root: Path, systems: dict[int, list[Path]], out: Path) -> dict[int, Counter]:
    """DP-GEN 0.14's standard selection (``_make_fp_vasp_inner`` with ``_select_by_model_devi_standard``,
    no clusters, virial levels at their 1e10 default, ``model_devi_skip`` 0)."""
    f_trust_lo, f_trust_hi, v_trust_lo, v_trust_hi = F_LO, F_HI, 1e10, 1e10
    model_devi_skip = 0
    counters = {}
    for ss, tasks in systems.items():
        fp_candidate, fp_rest_accurate, fp_rest_failed = [], [], []
        counter = Counter(candidate=0, failed=0, accurate=0)
        for task in tasks:
            tt = os.path.relpath(task, root)
            all_conf = np.loadtxt(os.path.join(task, "model_devi.out"))  # _read_model_devi_file
            if all_conf.shape == (7,):
                all_conf = all_conf.reshape(1, all_conf.shape[0])
            for ii in range(all_conf.shape[0]):
                if all_conf[ii][0] < model_devi_skip:
                    continue
                cc = int(all_conf[ii][0])
                if (all_conf[ii][1] < v_trust_hi and all_conf[ii][1] >= v_trust_lo) or (
                        all_conf[ii][4] < f_trust_hi and all_conf[ii][4] >= f_trust_lo):
                    fp_candidate.append([tt, cc])
                    counter["candidate"] += 1
                elif (all_conf[ii][1] >= v_trust_hi) or (all_conf[ii][4] >= f_trust_hi):
                    fp_rest_failed.append([tt, cc])
                    counter["failed"] += 1
                elif all_conf[ii][1] < v_trust_lo and all_conf[ii][4] < f_trust_lo:
                    fp_rest_accurate.append([tt, cc])
                    counter["accurate"] += 1
                else:
                    raise RuntimeError(f"md traj {tt} frame {ii} does not belong to any class")
        random.shuffle(fp_candidate)
        random.shuffle(fp_rest_failed)
        random.shuffle(fp_rest_accurate)
        for prefix, entries in (("candidate", fp_candidate), ("rest_accurate", fp_rest_accurate),
                                ("rest_failed", fp_rest_failed)):
            with open(out / f"{prefix}.shuffled.{ss:03d}.out", "w") as fp:
                for ii in entries:
                    fp.write(" ".join([str(nn) for nn in ii]) + "\n")
        counters[ss] = counter
    return counters


def read_lite(files: list[Path]) -> int:
    """Rows read by dpgen_lite's streaming reader."""
    from dpgen_lite.select.model_devi import iter_model_devi
    return sum(len(block) for f in files for block in iter_model_devi(f))


def read_dpgen(files: list[Path]) -> int:
    """Rows read by DP-GEN's reader (``np.loadtxt`` of the whole file)."""
    return sum(len(np.loadtxt(f)) for f in files)


def lite_select(root: Path, n_systems: int) -> dict:
    """dpgen_lite's select step on iteration 0 of ``root``."""
    from dpgen_lite.context import Context
    from dpgen_lite.select.stage import select
    param = {"model_devi_jobs": [{"sys_idx": list(range(n_systems))}], "model_devi_skip": 0,
             "model_devi_f_trust_lo": F_LO, "model_devi_f_trust_hi": F_HI, "model_devi_v_trust_lo": None,
             "model_devi_v_trust_hi": None, "model_devi_adapt_trust_lo": False, "model_devi_f_avg_relative": False,
             "fp_task_max": 100, "fp_task_min": 0, "fp_accurate_threshold": 1.0, "fp_accurate_soft_threshold": 1.0,
             "random_seed": 0, "convergence_accurate_ratio": None}
    return select(Context(param, {}, root), 0)


def main() -> None:
    """Print frames/s and peak memory of each reader and selection, and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=10000, help="rows per model_devi.out")
    parser.add_argument("--systems", type=int, default=4, help="systems the tasks are spread over")
    parser.add_argument("--small", action="store_true", help="100 tasks x 2000 frames")
    parser.add_argument("--dir", help="scratch folder (default: a new one in the temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--measure", nargs=3, metavar=("NAME", "ROOT", "WARMUP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        name, root, warmup = args.measure
        print(json.dumps(measure(name, Path(root), Path(warmup))))
        return
    if args.small:
        args.tasks, args.frames = 100, 2000
    scratch = Path(tempfile.mkdtemp(prefix="dpgen_select_", dir=args.dir))
    root, warmup = scratch / "run", scratch / "warmup"
    try:
        t0 = time.perf_counter()
        tasks = generate(root, args.tasks, args.frames, args.systems)
        generate(warmup, 1, 100, 1, seed=1)
        n_systems = tasks[-1][0] + 1
        size = sum((t / "model_devi.out").stat().st_size for _, t in tasks)
        n_frames = args.tasks * args.frames
        print(f"{args.tasks} tasks x {args.frames} frames = {n_frames} frames over {n_systems} systems, "
              f"{size / 2**30:.2f} GiB of model_devi.out, written in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()  # page cache: every reader then finds the files in memory
        for _, t in tasks:
            (t / "model_devi.out").read_bytes()
        warm = time.perf_counter() - t0

        results = {}
        for name in MEASURES:
            out = subprocess.run([sys.executable, __file__, "--measure", name, str(root), str(warmup)],
                                 capture_output=True, text=True, check=True)
            results[name] = json.loads(out.stdout.splitlines()[-1])
        for name in MEASURES[:2]:
            assert results[name]["result"] == n_frames, (name, results[name]["result"])
        assert results[MEASURES[2]]["result"] == results[MEASURES[3]]["result"], "the selections differ"

        counts = np.sum(list(results[MEASURES[3]]["result"].values()), axis=0)
        print("classes (same in both): " + ", ".join(
            f"{k} {v} ({100 * v / n_frames:.1f} %)" for k, v in zip(("accurate", "candidate", "failed"), counts)))
        print(f"raw read of every file from the page cache: {warm:.2f} s ({size / 2**20 / warm:.0f} MiB/s)")
        print(f"{'':40s} {'seconds':>9s} {'frames/s':>12s} {'peak MiB':>9s}")
        for name, r in results.items():
            print(f"{name:40s} {r['seconds']:9.2f} {n_frames / r['seconds']:12.0f} {r['mib']:9.1f}")
        for a, b in ((MEASURES[0], MEASURES[1]), (MEASURES[2], MEASURES[3])):
            ra, rb = results[a], results[b]
            print(f"{a.split(' (')[0]} / {b.split(' (')[0]}: {rb['seconds'] / ra['seconds']:.1f}x the frames/s; "
                  f"peak memory {ra['mib']:.1f} MiB against {rb['mib']:.1f} MiB")
        if args.keep:
            print(f"work folder: {scratch}")
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
