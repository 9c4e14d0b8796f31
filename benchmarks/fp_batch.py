"""Labelling with the ``ase`` fp style: one process per fp task against one process per core.

    .venv/bin/python benchmarks/fp_batch.py [--frames 40] [--calculator emt|lammpslib]

The same fp tasks (rattled 32-atom fcc Cu) go through the real fp step
(:func:`dpgen_lite.label.stage.run_fp_tasks`, dpdispatcher on the embedded machine) twice in one
process: with ``machine.json``'s command set to the style's own (one Python start-up and
calculator import per label, as DP-GEN runs a labelling program) and with no command (the
batch: one task per core, :meth:`dpgen_lite.label.ase_calc.AseStyle.batch_command`).  Printed:
wall time, seconds per label, the ratio, and whether the labels are identical.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import ase.build
import dpdata
import numpy as np

from dpgen_lite.context import Context
from dpgen_lite.dispatch import default_stage
from dpgen_lite.label.stage import collect_labels, fp_style, run_fp_tasks, write_fp_tasks


def calculator(name: str) -> dict:
    """``fp_params`` of EMT, or of Mishin's Cu EAM through LAMMPSlib."""
    if name == "emt":
        return {"calculator": "ase.calculators.emt.EMT"}
    from dpgen_lite.autotest.calculators.lammps import potentials_dir
    pot = potentials_dir() / "Cu_mishin1.eam.alloy"
    return {"calculator": "ase.calculators.lammpslib.LAMMPSlib",
            "kwargs": {"lmpcmds": ["pair_style eam/alloy", f"pair_coeff * * {pot} Cu"], "log_file": None}}


def label(folder: Path, frames: list, fp_params: dict, batched: bool) -> tuple[float, dpdata.LabeledSystem]:
    """Wall time (s) of run_fp_tasks over ``frames``, and the labels."""
    param = {"type_map": ["Cu"], "fp_style": "ase", "fp_params": fp_params}
    stage = default_stage("fp")
    ctx = Context(param, {"fp": stage}, folder)
    style = fp_style(param, folder)
    stage["command"] = None if batched else style.default_command()
    write_fp_tasks(style, [(0, f, {}) for f in frames], folder / "02.fp")
    start = time.perf_counter()
    run_fp_tasks(ctx, "02.fp")
    wall = time.perf_counter() - start
    collect_labels(style, folder / "02.fp", ratio_failed=0.0)
    return wall, dpdata.LabeledSystem(str(folder / "02.fp" / "data.000"), fmt="deepmd/npy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--calculator", choices=("emt", "lammpslib"), default="emt")
    args = parser.parse_args()
    frames = []
    for k in range(args.frames):
        atoms = ase.build.bulk("Cu", "fcc", a=3.615, cubic=True).repeat(2)
        atoms.rattle(0.05, seed=k)
        frames.append(dpdata.System(atoms, fmt="ase/structure", type_map=["Cu"]))
    base = Path(tempfile.mkdtemp(prefix="fp-batch-"))
    try:
        walls, data = {}, {}
        for mode in ("per task", "batched"):
            (base / mode).mkdir()
            walls[mode], data[mode] = label(base / mode, frames, calculator(args.calculator), mode == "batched")
    finally:
        shutil.rmtree(base)
    same = all(np.array_equal(data["per task"][k], data["batched"][k]) for k in ("energies", "forces", "virials"))
    print(f"{args.frames} labels, ase fp style with {args.calculator}, embedded machine")
    for mode, wall in walls.items():
        print(f"{mode:9s} {wall:7.1f} s  {wall / args.frames:6.3f} s per label")
    print(f"batched / per task: {walls['batched'] / walls['per task']:.2f}; identical labels: {same}")


if __name__ == "__main__":
    main()
