"""Labels against accuracy: pick rules (fp_pick) compared on the same loop, several seeds, one run.

    .venv/bin/python benchmarks/labels_to_accuracy.py [--rules random,max_devi:1,fps,fps_devi,fps_adapt] [--seeds 3]
                                                      [--target 60] [--dir DIR] [--keep]

The oracle is EMT (ASE, through the ``ase`` fp style) on fcc Cu, 32 atoms; the schedule is the
quickstart's (NVT 300 K, then NPT 600, 900 and three times 1200 K, 1000 steps each, trust
levels 0.10/0.30 eV/Å) with ``fp_task_max`` 10 so that the pick matters, every job run (no
convergence stop), 4 models of the quickstart's network trained 800 steps (400 when reusing).
The test set is ``examples/cu_emt/make_test_set.py``'s: 120 frames of EMT MD at 300-1200 K
that no loop sees.  For each rule and seed (``random_seed`` of the pick and the training
seeds), the loop runs once in its own folder; after each training the ensemble is tested on
the test set (``test_data_sys``, ``00.train/model_test.json``).  Each finished loop leaves
``RULE.SEED.json`` in ``--dir``: run again with the same ``--dir`` and it is not redone.

The rules (:data:`PICKS`): ``random`` (DP-GEN's), ``max_devi``, ``fps``, ``fps_devi`` (fps with
``devi_weight``) and ``fps_adapt`` (fps with ``stop_ratio`` 0.2: fewer labels where the
candidates are near duplicates); ``random_5`` is DP-GEN's rule with ``fp_task_max`` 5, the
adaptive budget's baseline: the same iterations and training on half the labels.

Printed: per rule, per iteration, the labels so far and the ensemble's mean force RMSE
(meV/Å), mean and spread (min-max) over the seeds; then, rule against rule, the labels needed
to reach ``--target`` meV/Å, the RMSE at equal labels (the fewest labels any loop ended with,
interpolated between iterations), the RMSE and labels at the last iteration (equal schedule),
and each loop's wall time.  The cost of a pick alone: ``benchmarks/pick_rules.py``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


PICKS = {"random": {"rule": "random"}, "max_devi": {"rule": "max_devi"}, "fps": {"rule": "fps"},
         "fps_devi": {"rule": "fps", "devi_weight": True}, "fps_adapt": {"rule": "fps", "stop_ratio": 0.2},
         "random_5": {"rule": "random"}}
"""The benchmark's names of the ``fp_pick`` settings it compares."""

FP_TASK_MAX = {"random_5": 5}
"""``fp_task_max`` where it is not 10: DP-GEN's rule on half the budget, the same training."""


def param(rule: str, seed: int) -> dict:
    """The quickstart's parameters with the benchmark's schedule, seed and pick rule."""
    p = json.loads((ROOT / "examples" / "cu_emt" / "param.json").read_text())
    p.update(final_training=None, convergence_accurate_ratio=None, fp_task_max=FP_TASK_MAX.get(rule, 10),
             random_seed=seed, training_reuse_numb_steps=400, test_data_sys=["test_set"], fp_pick=PICKS[rule])
    t = p["default_training_param"]
    t["training"]["numb_steps"] = 800
    t["training"]["seed"] = seed
    t["learning_rate"]["decay_steps"] = 40
    return p


def run_one(base: Path, rule: str, seed: int, shared: Path) -> dict:
    """One loop; per iteration: labels so far, mean force RMSE on the test set (meV/Å)."""
    folder = base / f"{rule}.{seed}"
    done = base / f"{rule}.{seed}.json"
    if done.is_file():  # finished by an earlier invocation with the same --dir
        return json.loads(done.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name in ("Cu.fcc.02x02x02", "test_set"):
        (folder / name).symlink_to(shared / name)
    (folder / "param.json").write_text(json.dumps(param(rule, seed), indent=1))
    start = time.perf_counter()
    out = subprocess.run([str(BIN / "dpgen"), "run", "param.json"], cwd=folder, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{folder}: dpgen run failed: {out.stderr[-2000:]}")
    wall = time.perf_counter() - start
    from dpgen_lite.report import collect

    report = collect(folder)
    labels, rmse = [], []
    for it in report["iterations"]:
        mt = it.get("model_test") or {}
        if mt.get("force_rmse_meV_per_A") is None:
            continue
        labels.append(sum(it2["labels_added"] or 0 for it2 in report["iterations"] if it2["iteration"] < it["iteration"]))
        rmse.append(mt["force_rmse_meV_per_A"])
    result = {"labels": labels, "rmse": rmse, "wall_s": wall}
    done.write_text(json.dumps(result))
    return result


def labels_to_reach(run: dict, target: float) -> float:
    """Labels trained on when the ensemble first reaches ``target`` meV/Å (inf if never)."""
    return next((n for n, r in zip(run["labels"], run["rmse"]) if r <= target), float("inf"))


def rmse_at(run: dict, labels: float) -> float:
    """Force RMSE at ``labels`` labels, linear between the iterations around it (the last
    iteration of each label count: an iteration that labels nothing does not move it)."""
    last = {n: r for n, r in zip(run["labels"], run["rmse"])}
    return float(np.interp(labels, list(last), list(last.values())))


def spread(values: list[float]) -> str:
    v = np.array(values, dtype=float)
    return f"{v.mean():7.1f} ({v.min():.1f}-{v.max():.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", default=",".join(PICKS),
                        help=f"of {', '.join(PICKS)}; RULE:N runs that rule with N seeds only")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--target", type=float, default=60.0, help="force RMSE target, meV/Å")
    parser.add_argument("--dir")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    base = Path(args.dir or tempfile.mkdtemp(prefix="labels-"))
    shared = base / "shared"
    if not (shared / "test_set").is_dir():  # made once per --dir, so resumed loops share the data
        shutil.rmtree(shared, ignore_errors=True)
        shared.mkdir(parents=True)
        shutil.copy(ROOT / "examples" / "cu_emt" / "init.json", shared)
        subprocess.run([str(BIN / "dpgen"), "init_bulk", "init.json"], cwd=shared, check=True, capture_output=True)
        subprocess.run([sys.executable, str(ROOT / "examples" / "cu_emt" / "make_test_set.py"), "test_set"],
                       cwd=shared, check=True, capture_output=True)
    seeds = {r: int(n or args.seeds) for r, _, n in (x.partition(":") for x in args.rules.split(","))}
    rules = list(seeds)
    runs = {r: [] for r in rules}
    for s in range(max(seeds.values())):  # seed by seed: an interrupted benchmark has whole seeds to compare
        for r in rules:
            if s < seeds[r]:
                runs[r].append(run_one(base, r, 1000 + s, shared))
    n_it = min(len(run["rmse"]) for rr in runs.values() for run in rr)
    equal = min(run["labels"][n_it - 1] for rr in runs.values() for run in rr)
    print("force RMSE on the 120-frame EMT MD test set (meV/Å), mean (min-max) over the seeds")
    for r in rules:
        print(f"\n{r} ({seeds[r]} seed(s))")
        print("iter  labels so far        force RMSE")
        for i in range(n_it):
            print(f"{i:4d}  {spread([run['labels'][i] for run in runs[r]])}  {spread([run['rmse'][i] for run in runs[r]])}")
    print(f"\nrule        seeds  labels to reach {args.target:g} meV/Å  RMSE at {equal} labels          "
          "RMSE at the last iteration  labels in total     loop wall time s")
    for r in rules:
        reach = [labels_to_reach(run, args.target) for run in runs[r]]
        print(f"{r:10s}  {seeds[r]:5d}  {spread(reach):25s}  {spread([rmse_at(run, equal) for run in runs[r]]):23s}  "
              f"{spread([run['rmse'][n_it - 1] for run in runs[r]]):26s}  "
              f"{spread([run['labels'][n_it - 1] for run in runs[r]]):18s}  {spread([run['wall_s'] for run in runs[r]])}")
    print(json.dumps({r: runs[r] for r in rules}))
    if not args.keep:
        shutil.rmtree(base)


if __name__ == "__main__":
    main()
