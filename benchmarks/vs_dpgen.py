"""dpgen_lite against DP-GEN 0.14 on the same inputs, on this machine, in one invocation.

    .venv/bin/python benchmarks/vs_dpgen.py [--jobs 4] [--steps 2500] [--fp-task-max 20] [--rounds 1]
                                            [--seed 0] [--dpgen-venv DIR] [--dir DIR] [--keep]

DP-GEN (``dpgen`` 0.14.0 from PyPI) lives in its own virtual environment (``--dpgen-venv``,
created with ``pip install dpgen==0.14.0`` the first time); both engines call the same ``dp``
and ``lmp`` (this environment's deepmd-kit and LAMMPS) and the same labelling program.

The inputs are the quickstart's (``examples/cu_emt``: fcc Cu, 32 atoms, the starting data of
``dpgen init_bulk``, 4 models of the same network and training settings, the first ``--jobs``
exploration jobs from 300 K to 1200 K, trust levels 0.10/0.30 eV/Å), with ``--steps``
training steps and labels from EMT through the ``custom`` fp style of both engines
(``emt_label.py``: one Python process per label, the same cost for both).  Both get one
``machine.json`` (Shell batch in place, ``LazyLocalContext``): a stage's tasks split into at
most one job per core, the cores shared among the jobs (``OMP``/``TF`` threads).  Job status is
checked every second by both: ``check_interval`` 1 for dpgen_lite, and DP-GEN (which has no key
for it and waits dpdispatcher's default 30 s) is started with that default set to 1 s.  With
this machine file dpgen_lite trains, freezes and tests in one process per task
(``dpgen_lite.train.dp_task``), DP-GEN starts ``dp`` once per command.

Printed, per engine and step kind (train, MD, fp: the summed wall time of those steps in
``dpgen.log``; the rest: everything else of the ``dpgen run`` process) and in total: wall time
in s, mean over ``--rounds`` (engines alternated ABBA), and dpgen_lite / DP-GEN; the same per
unit of work (per iteration that trained, per exploration, per label: the two loops do not
always do the same work, since their seeds differ); then labels and the force and energy RMSE
of the last iteration's models on the quickstart's test set (120 frames of EMT MD at 300-1200 K
that neither loop sees).  DP-GEN's seeds are drawn from Python's ``random``, seeded here with
``--seed`` + round (DP-GEN itself leaves it unseeded); its seeds still differ from dpgen_lite's, so
accuracies and work agree only within seed noise.  Leave the machine idle while it runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from quickstart import test_models

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DPGEN_VERSION = "0.14.0"
THREADS = ("OMP_NUM_THREADS", "TF_INTRA_OP_PARALLELISM_THREADS", "TF_INTER_OP_PARALLELISM_THREADS")
LAUNCH_DPGEN = """import functools, os, random, sys
import dpdispatcher.submission as s
s.Submission.run_submission = functools.partialmethod(s.Submission.run_submission, check_interval=1)
random.seed(int(os.environ["VS_DPGEN_SEED"]))
from dpgen.main import main
sys.argv[0] = "dpgen"
sys.exit(main())
"""
"""``dpgen`` with dpdispatcher's job check every 1 s instead of 30 s (DP-GEN has no key for it), and
Python's ``random`` seeded with ``VS_DPGEN_SEED``: DP-GEN draws its model and training seeds, and
shuffles its candidates, with ``random`` unseeded, so a round is otherwise not reproducible."""


def dpgen_venv(path: Path) -> Path:
    """The python of DP-GEN's virtual environment at ``path``, created (``dpgen==0.14.0``) if absent."""
    python = path / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"dpgen=={DPGEN_VERSION}"], check=True)
    return python


def param(n_jobs: int, steps: int, fp_task_max: int) -> dict:
    """The quickstart's parameters with the benchmark's schedule, steps, and the ``custom`` EMT labels;
    dpgen_lite's own keys (test set, convergence, final training) removed so that DP-GEN reads it too, and
    ``training_init_model`` (DP-GEN then wants ``training_iter0_model_path``; ``training_reuse_iter`` 1
    starts every later training from the previous models in both)."""
    p = json.loads((ROOT / "examples" / "cu_emt" / "param.json").read_text())
    for key in ("_comment", "test_data_sys", "convergence_accurate_ratio", "final_training", "training_init_model"):
        p.pop(key)
    p["model_devi_jobs"] = p["model_devi_jobs"][:n_jobs]
    p["default_training_param"]["training"]["numb_steps"] = steps
    p["training_reuse_numb_steps"] = math.ceil(0.6 * steps)  # the quickstart's 1500 of 2500
    p.update(fp_task_max=fp_task_max, fp_style="custom",
             fp_params={"input_fmt": "vasp/poscar", "input_fn": "POSCAR", "output_fmt": "ase/traj",
                        "output_fn": "label.traj"})
    return p


def machine(n_train: int, n_md: int, n_fp: int, cores: int, check_interval: bool) -> dict:
    """One DP-GEN ``machine.json``: per stage at most one job per core, threads = cores / jobs."""
    def stage(command: str, n_tasks: int) -> dict:
        n_jobs = max(1, min(n_tasks, cores))
        threads = str(max(1, cores // n_jobs))
        out = {"command": command,
               "machine": {"batch_type": "Shell", "context_type": "LazyLocalContext", "local_root": "./"},
               "resources": {"number_node": 1, "cpu_per_node": int(threads), "gpu_per_node": 0, "queue_name": "",
                             "group_size": math.ceil(n_tasks / n_jobs), "envs": dict.fromkeys(THREADS, threads)}}
        return {**out, "check_interval": 1} if check_interval else out
    return {"api_version": "1.0", "deepmd_version": "3.2.0",
            "train": stage(str(BIN / "dp"), n_train),
            "model_devi": stage(str(BIN / "lmp"), n_md),
            "fp": stage(f"{sys.executable} {ROOT / 'benchmarks' / 'emt_label.py'} POSCAR label.traj", n_fp)}


def last_models(folder: Path) -> list[Path]:
    """The graphs of the last iteration that trained (``iter.*/00.train/graph.*.pb``)."""
    trained = sorted(p for p in folder.glob("iter.*/00.train") if list(p.glob("graph.*.pb")))
    return sorted(trained[-1].glob("graph.*.pb"))


def run_engine(name: str, folder: Path, command: list[str], shared: Path, seed: int) -> dict:
    """One ``dpgen run`` in ``folder`` (DP-GEN's ``random`` seeded with ``seed``): wall time per step
    kind (s), labels, test RMSE of the last models."""
    from dpgen_lite.report import collect

    for item in ("Cu.fcc.02x02x02", "param.json", "machine.json"):
        (folder / item).symlink_to(shared / (f"{name}.machine.json" if item == "machine.json" else item))
    start = time.perf_counter()
    out = subprocess.run(command + ["run", "param.json", "machine.json"], cwd=folder, capture_output=True, text=True,
                         env={**os.environ, "VS_DPGEN_SEED": str(seed)})
    total = time.perf_counter() - start
    if out.returncode:
        raise RuntimeError(f"{folder}: {name} failed ({out.returncode}): {out.stderr[-3000:]}")
    report = collect(folder)
    times = {kind: sum(it["walltime_s"][kind] or 0.0 for it in report["iterations"]) for kind in ("train", "md", "fp")}
    trained = [t.parent.name for t in sorted(folder.glob("iter.*/00.train")) if not (t / "copied").exists()]
    explored = {t.parent.parent.name for t in folder.glob("iter.*/01.model_devi/task.*")}
    times["rest"] = total - sum(times.values())
    times["total"] = total
    test = test_models(last_models(folder), shared / "test_set")
    labels = sum(it["labels_added"] or 0 for it in report["iterations"])
    return {"walltime_s": times, "iterations": len(report["iterations"]), "trainings": len(trained),
            "explorations": len(explored), "labels": labels,
            "per_unit_s": {"train": times["train"] / max(len(trained), 1), "md": times["md"] / max(len(explored), 1),
                           "fp": times["fp"] / max(labels, 1)},
            "force_rmse_meV_per_A": float(np.mean([t["force_rmse_meV_per_A"] for t in test.values()])),
            "energy_rmse_meV_per_atom": float(np.mean([t["energy_rmse_meV_per_atom"] for t in test.values()]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=4, help="exploration jobs (= iterations that label)")
    parser.add_argument("--steps", type=int, default=2500, help="training steps (60 %% of them when reusing)")
    parser.add_argument("--fp-task-max", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1, help="runs per engine, alternated ABBA")
    parser.add_argument("--dpgen-venv", default=str(Path.home() / ".cache" / "dpgen_lite" / f"dpgen-{DPGEN_VERSION}"))
    parser.add_argument("--seed", type=int, default=0, help="DP-GEN's random seed in round 0 (then +1 per round)")
    parser.add_argument("--dir")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    dpgen_python = dpgen_venv(Path(args.dpgen_venv))
    base = Path(args.dir or tempfile.mkdtemp(prefix="vs-dpgen-"))
    shared = base / "shared"
    shared.mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "cu_emt" / "init.json", shared)
    subprocess.run([str(BIN / "dpgen"), "init_bulk", "init.json"], cwd=shared, check=True, capture_output=True)
    subprocess.run([sys.executable, str(ROOT / "examples" / "cu_emt" / "make_test_set.py"), "test_set"], cwd=shared,
                   check=True, capture_output=True)
    p = param(args.jobs, args.steps, args.fp_task_max)
    (shared / "param.json").write_text(json.dumps(p, indent=1))
    n_md = len(list((shared / p["sys_configs_prefix"]).glob(p["sys_configs"][0][0])))  # POSCARs: 1 MD task each
    cores = os.cpu_count() or 1
    sizes = (p["numb_models"], n_md, args.fp_task_max)
    engines = {"dpgen_lite": [str(BIN / "dpgen")], "DP-GEN": [str(dpgen_python), "-c", LAUNCH_DPGEN]}
    for name in engines:
        (shared / f"{name}.machine.json").write_text(
            json.dumps(machine(*sizes, cores, check_interval=name == "dpgen_lite"), indent=1))
    os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ['PATH']}"  # this environment's dp and lmp for both
    runs = {name: [] for name in engines}
    order = list(engines)
    for r in range(args.rounds):
        for name in order if r % 2 == 0 else order[::-1]:
            folder = base / f"{name}.{r}"
            folder.mkdir()
            runs[name].append(run_engine(name, folder, engines[name], shared, args.seed + r))
            print(f"{name} round {r}: {json.dumps(runs[name][-1])}", flush=True)

    def mean(name: str, key: str, kind: str | None = None) -> float:
        return float(np.mean([run[key] if kind is None else run[key][kind] for run in runs[name]]))

    print(f"\n{args.jobs} exploration jobs, {args.steps} training steps, fp_task_max {args.fp_task_max}, {cores} cores, "
          f"mean of {args.rounds} round(s)")
    print(f"{'':22s}{'dpgen_lite':>12s}{'DP-GEN':>12s}{'ratio':>8s}")
    for kind in ("train", "md", "fp", "rest", "total"):
        a, b = mean("dpgen_lite", "walltime_s", kind), mean("DP-GEN", "walltime_s", kind)
        print(f"{kind + ' wall time (s)':22s}{a:12.1f}{b:12.1f}{a / b if b else float('nan'):8.2f}")
    print("per unit of work (the loops may differ in work: an iteration with fewer than fp_task_min labels "
          "makes the next one reuse its models)")
    for kind, unit in (("train", "per iteration that trained"), ("md", "per exploration"), ("fp", "per label")):
        a, b = mean("dpgen_lite", "per_unit_s", kind), mean("DP-GEN", "per_unit_s", kind)
        print(f"{kind + ' s ' + unit:34s}{a:8.1f}{b:12.1f}{a / b if b else float('nan'):8.2f}")
    for key, label in (("iterations", "iterations"), ("trainings", "iterations that trained"),
                       ("labels", "labels"),
                       ("force_rmse_meV_per_A", "force RMSE (meV/Å)"),
                       ("energy_rmse_meV_per_atom", "energy RMSE (meV/at)")):
        print(f"{label:22s}{mean('dpgen_lite', key):12.1f}{mean('DP-GEN', key):12.1f}")
    print(json.dumps(runs))
    if not args.keep:
        shutil.rmtree(base)


if __name__ == "__main__":
    main()
