"""MD speed of a frozen model against its ``dp compress``-ed twin, on the quickstart's system.

    .venv/bin/python benchmarks/compress.py RUN_FOLDER [--atoms-rep 3] [--steps 2000]

RUN_FOLDER is a finished quickstart run with ``final_training`` (``final/00.long_train/000``
holds ``frozen_model.pb`` and ``compressed_model.pb``).  Both models drive the same LAMMPS
NVT run of fcc Cu (4 x rep^3 atoms, 600 K) in this process's environment, and the loop
times reported by LAMMPS are compared.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from pathlib import Path

import ase.build
import dpdata

from dpgen_lite.dispatch import executable
from dpgen_lite.explore.lammps import lammps_input


def loop_time(model: Path, conf: dpdata.System, steps: int, work: Path) -> float:
    """LAMMPS loop time (s) of ``steps`` NVT steps driven by ``model``."""
    work.mkdir()
    conf.to("lammps/lmp", str(work / "conf.lmp"))
    text = lammps_input(models=[str(model)], masses=[63.546], temp=600, press=None, ensemble="nvt",
                        nsteps=steps, trj_freq=steps, dt=0.002, seed=1)
    (work / "input.lammps").write_text(text)
    out = subprocess.run([executable("lmp"), "-i", "input.lammps"], cwd=work, capture_output=True, text=True,
                         check=True).stdout
    return float(re.search(r"Loop time of ([0-9.eE+-]+)", out).group(1))


def main() -> None:
    """Print atoms, steps, loop time of each model (s), ns/day, and the speed-up."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", type=Path)
    parser.add_argument("--atoms-rep", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    task = args.run / "final" / "00.long_train" / "000"
    atoms = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat(args.atoms_rep)
    conf = dpdata.System(atoms, fmt="ase/structure", type_map=["Cu"])
    with tempfile.TemporaryDirectory() as tmp:
        times = {name: loop_time(task / f"{name}.pb", conf, args.steps, Path(tmp) / name)
                 for name in ("frozen_model", "compressed_model")}
    n = len(atoms)
    for name, t in times.items():
        print(f"{name:<18} {n} atoms  {args.steps} steps  loop {t:7.2f} s  "
              f"{args.steps * 0.002e-3 / t * 86400:7.3f} ns/day")
    print(f"speed-up of compression: {times['frozen_model'] / times['compressed_model']:.2f}x")


if __name__ == "__main__":
    main()
