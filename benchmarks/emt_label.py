"""The cheap oracle of ``vs_dpgen.py``: EMT (ASE) energy (eV), forces (eV/Å) and stress of one
structure, written as an ASE trajectory that dpdata reads as ``ase/traj``.

    python emt_label.py POSCAR label.traj

It is the ``fp.command`` of both engines' ``custom`` fp style (``input_fmt`` ``vasp/poscar``,
``output_fmt`` ``ase/traj``), so both label with the same program and the same start-up cost.
"""

import sys

import ase.io
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator


def main(source: str, target: str) -> None:
    atoms = ase.io.read(source, format="vasp")
    atoms.calc = EMT()
    results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(), "stress": atoms.get_stress()}
    atoms.calc = SinglePointCalculator(atoms, **results)
    ase.io.write(target, atoms, format="traj")


if __name__ == "__main__":
    main(*sys.argv[1:3])
