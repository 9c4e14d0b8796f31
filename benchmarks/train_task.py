"""One training task's wall time: ``dp`` per command (DP-GEN's way) against one process (``dp_task``).

    .venv/bin/python benchmarks/train_task.py [--steps 100] [--repeats 3] [--compress]

The quickstart's network on 20 perturbed fcc Cu frames labelled by EMT, one thread (as the
embedded machine gives each of two trainings on 2 cores).  Both commands come from
``train_command`` (train, freeze, and with ``--compress`` compress), alternated ``--repeats``
times; printed: wall time of each (mean, min), the saving per training task, and whether both
frozen models predict the same energies and forces.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ase.build
import dpdata
import numpy as np
from ase.calculators.emt import EMT

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dpgen_lite.dispatch import executable  # noqa: E402
from dpgen_lite.train.deepmd import train_command  # noqa: E402

THREADS = {"OMP_NUM_THREADS": "1", "TF_INTRA_OP_PARALLELISM_THREADS": "1", "TF_INTER_OP_PARALLELISM_THREADS": "1"}


def frames(n: int) -> dpdata.LabeledSystem:
    """``n`` rattled 32-atom fcc Cu frames labelled by EMT."""
    out = None
    for k in range(n):
        atoms = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
        atoms.rattle(0.08, seed=k)
        atoms.calc = EMT()
        atoms.get_potential_energy()
        frame = dpdata.LabeledSystem(atoms, fmt="ase/structure", type_map=["Cu"])
        out = frame if out is None else out + frame
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compress", action="store_true")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="train-task-"))
    frames(20).to("deepmd/npy", str(base / "data"))
    train = json.loads((ROOT / "examples" / "cu_emt" / "param.json").read_text())["default_training_param"]
    train["model"]["descriptor"]["seed"] = train["model"]["fitting_net"]["seed"] = 1
    train["training"].update(numb_steps=args.steps, disp_freq=50, save_freq=args.steps, seed=1,
                             training_data={"systems": [str(base / "data")], "batch_size": 1})
    env = {**os.environ, **THREADS}
    ways = {"dp per command": None, "one process": sys.executable}
    times: dict[str, list[float]] = {w: [] for w in ways}
    for r in range(args.repeats):
        for way, python in ways.items():
            work = base / f"{way.replace(' ', '_')}.{r}"
            work.mkdir()
            (work / "input.json").write_text(json.dumps(train))
            command = train_command(executable("dp"), "tensorflow", None, compress=args.compress, python=python)
            start = time.perf_counter()
            subprocess.run(["bash", "-c", command], cwd=work, check=True, env=env, capture_output=True)
            times[way].append(time.perf_counter() - start)
    from deepmd.infer import DeepPot

    test = frames(3)
    n = test.get_nframes()
    preds = [DeepPot(str(base / f"{w.replace(' ', '_')}.0" / "frozen_model.pb")).eval(
        test["coords"].reshape(n, -1), test["cells"].reshape(n, -1), [0] * test.get_natoms()) for w in ways]
    same = all(np.allclose(a, b, rtol=0, atol=1e-10) for a, b in zip(*preds))
    print(f"{args.steps} steps{', compressed' if args.compress else ''}, {args.repeats} repeats, 1 thread")
    for way in ways:
        print(f"{way:16s} mean {np.mean(times[way]):6.1f} s   min {min(times[way]):6.1f} s")
    a, b = np.mean(times["dp per command"]), np.mean(times["one process"])
    print(f"saving per training task: {a - b:.1f} s ({100 * (a - b) / a:.0f} %); same predictions: {same}")


if __name__ == "__main__":
    main()
