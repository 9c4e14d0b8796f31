"""The quickstart's figures: wall time, iterations, labels, accuracy against EMT on unseen frames.

    .venv/bin/python benchmarks/quickstart.py [--dir DIR] [--keep]
    .venv/bin/python benchmarks/quickstart.py --read FOLDER     # a finished run, not run again

Runs ``examples/cu_emt`` as ``bash run.sh quickstart`` does (``dpgen init_bulk``,
``make_test_set.py``, ``dpgen run``) in a scratch folder, timing each part, then prints:

* wall time of the set-up and of ``dpgen run`` (s), iterations, why the loop ended;
* labels (EMT frames labelled by the loop, held-out ones included) and their share of the
  frames explored;
* per iteration: accurate ratio and the ensemble's force RMSE against EMT on the test set
  (``test_set/``: 120 frames of EMT MD at 300-1200 K the loop never trains on), from
  ``00.train/model_test.json``, and the Spearman correlation of deviation with true error;
* the published models (``models/*.pb``) on the same test set: energy RMSE (meV/atom) and
  force RMSE (meV/Å), computed here with deepmd-kit's ``DeepPot`` (the same numbers as
  ``dp test``).
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

import dpdata
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run_quickstart(folder: Path) -> dict:
    """Copy the example into ``folder`` and run it; wall times in s."""
    shutil.copytree(ROOT / "examples" / "cu_emt", folder)
    times = {}
    for name, cmd in (("init_bulk", [str(BIN / "dpgen"), "init_bulk", "init.json"]),
                      ("test_set", [sys.executable, "make_test_set.py", "test_set"]),
                      ("run", [str(BIN / "dpgen"), "run", "param.json"])):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=folder, check=True, capture_output=True, text=True)
        times[name] = time.perf_counter() - start
    return times


def test_models(models: list[Path], test_set: Path) -> dict[str, dict]:
    """Energy (meV/atom) and force (meV/Å) RMSE of each model (by file stem) on ``test_set`` (deepmd/npy)."""
    from deepmd.infer import DeepPot

    data = dpdata.LabeledSystem(str(test_set), fmt="deepmd/npy")
    n, natoms = data.get_nframes(), data.get_natoms()
    out = {}
    for model in models:
        dp = DeepPot(str(model))
        types = [dp.get_type_map().index(data["atom_names"][t]) for t in data["atom_types"]]
        e, f, _ = dp.eval(data["coords"].reshape(n, -1), data["cells"].reshape(n, -1), types)
        out[model.stem] = {
            "energy_rmse_meV_per_atom": float(1e3 * np.sqrt(np.mean(((e.ravel() - data["energies"]) / natoms) ** 2))),
            "force_rmse_meV_per_A": float(1e3 * np.sqrt(np.mean((f.reshape(n, natoms, 3) - data["forces"]) ** 2))),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", help="scratch folder (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the run folder")
    parser.add_argument("--read", help="report on this finished quickstart folder instead of running one")
    args = parser.parse_args()
    from dpgen_lite.report import collect

    if args.read:
        folder, times = Path(args.read), None
    else:
        base = Path(args.dir or tempfile.mkdtemp(prefix="quickstart-"))
        folder = base / "cu_emt"
        times = run_quickstart(folder)
    report = collect(folder)
    its = report["iterations"]
    explored = sum(s["candidate"] + s["accurate"] + s["failed"] for it in its for s in it["systems"])
    labels = sum(s["labels"] + s.get("held_out", 0) for it in its for s in it["systems"])
    if times:
        print(f"wall time: set-up {times['init_bulk'] + times['test_set']:.0f} s (init_bulk {times['init_bulk']:.0f} s, "
              f"test set {times['test_set']:.0f} s), dpgen run {times['run']:.0f} s "
              f"({times['run'] / 60:.1f} min) on {__import__('os').cpu_count()} cores")
    print(f"iterations: {len(its)}; {report['stop_reason']}")
    print(f"labels: {labels} EMT frames of {explored} explored ({100 * labels / max(explored, 1):.1f} %)")
    print("iter  accurate  test force RMSE (meV/Å, mean of the ensemble)  Spearman(devi, error)")
    for it in its:
        mt = it.get("model_test") or {}
        print(f"{it['iteration']:4d}  {it['accurate_ratio'] if it['accurate_ratio'] is not None else float('nan'):8.3f}  "
              f"{mt.get('force_rmse_meV_per_A') or float('nan'):10.1f}  {mt.get('spearman') or float('nan'):10.2f}")
    print("published models on the 120-frame EMT MD test set (300-1200 K):")
    for name, r in test_models(sorted((folder / "models").glob("*.pb")), folder / "test_set").items():
        print(f"  {name:28s} energy {r['energy_rmse_meV_per_atom']:6.2f} meV/atom  "
              f"force {r['force_rmse_meV_per_A']:6.1f} meV/Å")
    print(json.dumps({"times_s": times, "iterations": len(its), "labels": labels}))
    if not args.read and not args.keep:
        shutil.rmtree(folder.parent)


if __name__ == "__main__":
    main()
