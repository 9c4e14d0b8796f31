"""A labelling program for the ``custom`` fp style in tests: ``python custom_oracle.py [INPUT [OUTPUT]]``.

Reads the structure in INPUT (default ``POSCAR``; any file ASE reads), computes energy (eV),
forces (eV/Å) and stress (eV/Å^3) with ASE's EMT, and writes them as extended XYZ to OUTPUT
(default ``label.xyz``), which dpdata reads with ``fmt="extxyz"``.  Imports only ASE.
"""

import sys

import ase.io
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator


def main(argv: list[str]) -> None:
    """Label the structure of ``argv[0]`` (POSCAR) into ``argv[1]`` (label.xyz)."""
    src = argv[0] if argv else "POSCAR"
    dst = argv[1] if len(argv) > 1 else "label.xyz"
    atoms = ase.io.read(src)
    atoms.calc = EMT()
    results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(),
               "stress": atoms.get_stress(voigt=False)}
    atoms.calc = SinglePointCalculator(atoms, **results)
    ase.io.write(dst, atoms, format="extxyz")


if __name__ == "__main__":
    main(sys.argv[1:])
