"""Task-side entry point of ASE calculators: ``python -m dpgen_lite.autotest.ase_task``.

Reads ``POSCAR``, ``task.json`` and ``ase_calc.json`` in the current folder, relaxes as asked and
writes ``ase_out.extxyz`` (final structure, energy eV, forces eV/Å, stress eV/Å^3).
"""

from __future__ import annotations

import json

import ase.io
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from dpgen_lite.autotest.task import read_task
from dpgen_lite.label.ase_runner import load_calculator

CALC_FILE = "ase_calc.json"
OUT_FILE = "ase_out.extxyz"
LOG_FILE = "relax.log"


def run_task(atoms: Atoms, calc, setting: dict, logfile: str = LOG_FILE) -> Atoms:
    """Relax ``atoms`` with ``calc`` as ``setting`` asks; return them with results attached.

    ASE's ``BFGS`` until the largest force (and ``FrechetCellFilter`` stress component x volume)
    is below ``fmax`` eV/Å or ``maxiter`` steps; ``relax_vol`` without ``relax_shape`` keeps the
    shape (``hydrostatic_strain``).  Energy eV, forces eV/Å, stress eV/Å^3.
    """
    from ase.constraints import FixAtoms, FixCartesian
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    atoms.calc = calc
    pos, shape, vol = setting["relax_pos"], setting["relax_shape"], setting["relax_vol"]
    if not pos:
        atoms.set_constraint(FixAtoms(indices=range(len(atoms))))
    elif any(setting["fix_axes"]):
        atoms.set_constraint(FixCartesian(range(len(atoms)), mask=setting["fix_axes"]))
    if pos or vol or shape:
        target = FrechetCellFilter(atoms, hydrostatic_strain=not shape) if (vol or shape) else atoms
        BFGS(target, logfile=logfile).run(fmax=setting["fmax"], steps=setting["maxiter"])
    atoms.set_constraint()
    return atoms

def main() -> None:
    """Run the task of the current folder."""
    atoms, setting = read_task(".")
    with open(CALC_FILE) as fh:
        spec = json.load(fh)
    atoms = run_task(atoms, load_calculator(spec["calculator"], spec["kwargs"]), setting)
    results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(),
               "stress": atoms.get_stress(voigt=False)}
    atoms.calc = SinglePointCalculator(atoms, **results)
    ase.io.write(OUT_FILE, atoms, format="extxyz")


if __name__ == "__main__":
    main()
