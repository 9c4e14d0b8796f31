"""Task-side entry point of ASE calculators: ``python -m dpgen_lite.autotest.ase_task``.

Reads ``POSCAR``, ``task.json`` and ``ase_calc.json`` in the current folder, relaxes as asked and
writes ``ase_out.extxyz`` (final structure, energy eV, forces eV/Å, stress eV/Å^3).
A NEB task (``task.json`` with a ``neb`` entry, :func:`run_neb`) also reads ``POSCAR.final`` and
writes the relaxed band, end points included, as ``neb_band.extxyz`` (energy eV, forces eV/Å).
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
NEB_FINAL_FILE = "POSCAR.final"
NEB_OUT_FILE = "neb_band.extxyz"
NEB_LOG_FILE = "neb.log"


def run_task(atoms: Atoms, calc, setting: dict, logfile: str = LOG_FILE) -> Atoms:
    """Relax ``atoms`` with ``calc`` as ``setting`` asks; return them with results attached.

    ASE's ``BFGS`` until the largest force (and ``FrechetCellFilter`` stress component x volume)
    is below ``fmax`` eV/Å or ``maxiter`` steps; ``relax_vol`` without ``relax_shape`` keeps the
    shape (``hydrostatic_strain``); ``relax_height`` alone relaxes only the zz strain (a Voigt
    mask), which moves the third cell vector along z.  Energy eV, forces eV/Å, stress eV/Å^3.
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
    height = setting.get("relax_height") and not (vol or shape)
    if pos or vol or shape or height:
        target = (FrechetCellFilter(atoms, hydrostatic_strain=not shape) if (vol or shape) else
                  FrechetCellFilter(atoms, mask=[False, False, True, False, False, False]) if height else atoms)
        BFGS(target, logfile=logfile).run(fmax=setting["fmax"], steps=setting["maxiter"])
    atoms.set_constraint()
    return atoms

def run_neb(initial: Atoms, final: Atoms, make_calc, setting: dict) -> list[Atoms]:
    """Climbing-image NEB (Henkelman, Uberuaga and Jónsson, J. Chem. Phys. 113, 9901 (2000)) with
    ASE's ``ase.mep.NEB``: ``initial`` and ``final`` (same atoms, same cell) relaxed at fixed cell
    (:func:`run_task`), ``setting["neb"]["images"]`` images between them by IDPP interpolation
    (Smidstrup et al., J. Chem. Phys. 140, 214106 (2014)), improved tangents (Henkelman and Jónsson,
    J. Chem. Phys. 113, 9978 (2000), as LAMMPS's ``fix neb``), the band relaxed with FIRE to
    ``fmax`` eV/Å without, then (``climb``) with the climbing image, as LAMMPS's ``neb`` does;
    springs ``spring`` eV/Å², at most ``steps`` FIRE steps per stage.  ``make_calc()`` returns a
    new calculator (one per image).  Returns the band, end points included, each with its
    energy (eV) and forces (eV/Å) attached.
    """
    from ase.mep import NEB
    from ase.optimize import FIRE

    neb = setting["neb"]
    ends = [run_task(a, make_calc(), {**setting, "relax_shape": False, "relax_vol": False})
            for a in (initial, final)]
    images = [ends[0], *(ends[0].copy() for _ in range(neb["images"])), ends[1]]
    for image in images[1:-1]:
        image.calc = make_calc()
    band = NEB(images, k=neb["spring"], climb=False, method="improvedtangent")
    band.interpolate(method="idpp", mic=True)
    for climb in (False, True) if neb["climb"] else (False,):
        band.climb = climb
        FIRE(band, logfile=NEB_LOG_FILE).run(fmax=neb["fmax"], steps=neb["steps"])
    return [_frozen(a) for a in images]


def _frozen(atoms: Atoms) -> Atoms:
    """``atoms`` with their energy and forces kept in a SinglePointCalculator."""
    atoms.calc = SinglePointCalculator(atoms, energy=atoms.get_potential_energy(), forces=atoms.get_forces())
    return atoms


def main() -> None:
    """Run the task of the current folder."""
    atoms, setting = read_task(".")
    with open(CALC_FILE) as fh:
        spec = json.load(fh)
    if "neb" in setting:
        final = ase.io.read(NEB_FINAL_FILE, format="vasp")
        band = run_neb(atoms, final, lambda: load_calculator(spec["calculator"], spec["kwargs"]), setting)
        ase.io.write(NEB_OUT_FILE, band, format="extxyz")
        return
    atoms = run_task(atoms, load_calculator(spec["calculator"], spec["kwargs"]), setting)
    results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(),
               "stress": atoms.get_stress(voigt=False)}
    atoms.calc = SinglePointCalculator(atoms, **results)
    ase.io.write(OUT_FILE, atoms, format="extxyz")


if __name__ == "__main__":
    main()
