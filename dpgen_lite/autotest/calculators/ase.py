"""Any ASE calculator, named by import path; the task runs ``python -m dpgen_lite.autotest.ase_task``.

``interaction``::

    {"type": "ase", "calculator": "ase.calculators.emt.EMT", "kwargs": {}, "type_map": ["Cu"]}
    {"type": "ase", "calculator": "deepmd.calculator.DP", "model": "graph.pb", "type_map": ["Cu"]}
    {"type": "ase", "calculator": "ase.calculators.lammpslib.LAMMPSlib",
     "kwargs": {"lmpcmds": ["pair_style eam/alloy", "pair_coeff * * ../Cu.eam.alloy Cu"]},
     "model": "Cu.eam.alloy", "model_kwarg": null, "type_map": ["Cu"]}

With ``model`` given, the calculator receives ``kwargs[model_kwarg] = "../<model name>"``
(``model_kwarg`` default ``"model"``, null: not passed).  The task command puts the venv's
``lib/`` on ``LD_LIBRARY_PATH`` so that LAMMPSlib finds ``libmpi.so.12``.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms

from ...dispatch import library_path_env
from ...params import ParamError, arg
from ..task import TaskFailed, TaskResult
from ..units import EV_A3_TO_GPA
from .base import Calculator, register
from ..ase_task import CALC_FILE, LOG_FILE, NEB_FINAL_FILE, NEB_LOG_FILE, NEB_OUT_FILE, OUT_FILE



@register
class AseCalculator(Calculator):
    """An ASE calculator class (``calculator`` import path, ``kwargs``); relaxes with ASE's BFGS
    (``FrechetCellFilter`` for the cell, ``FixCartesian`` for frozen axes)."""

    name = "ase"
    backward_files = [OUT_FILE, LOG_FILE]

    @classmethod
    def args(cls):
        return [
            arg("calculator", str, "import path of the ASE calculator class"),
            arg("kwargs", dict, "keyword arguments of the calculator", default={}),
            arg("model", [str, list], "model / potential file(s), copied next to the tasks", default=None),
            arg("model_kwarg", [str, type(None)], "kwarg receiving '../<first model name>'", default="model"),
        ]

    def calc_spec(self) -> dict:
        """``{"calculator": path, "kwargs": {...}}`` as the task sees it."""
        kwargs = dict(self.inter["kwargs"])
        files = self.model_files()
        if files and self.inter["model_kwarg"]:
            kwargs[self.inter["model_kwarg"]] = f"../{files[0].name}"
        return {"calculator": self.inter["calculator"], "kwargs": kwargs}

    def check(self) -> None:
        super().check()
        path = self.inter["calculator"]
        module, _, cls = path.rpartition(".")
        try:
            import importlib
            getattr(importlib.import_module(module), cls)
        except (ImportError, AttributeError, ValueError) as err:
            raise ParamError(f"interaction.calculator = {path!r} cannot be imported ({err}); give the "
                             "import path of an ASE calculator class, e.g. 'ase.calculators.emt.EMT'") from None

    def write_inputs(self, task_dir: Path, atoms: Atoms, setting: dict) -> list[str]:
        (Path(task_dir) / CALC_FILE).write_text(json.dumps(self.calc_spec(), indent=1))
        return [CALC_FILE]

    def default_command(self) -> str:
        return f"{library_path_env()} {shlex.quote(sys.executable)} -m dpgen_lite.autotest.ase_task"

    def read_result(self, task_dir: Path) -> TaskResult:
        out = Path(task_dir) / OUT_FILE
        if not out.is_file():
            raise TaskFailed(f"{task_dir}: no {OUT_FILE} (the calculator crashed; see the task's err file)")
        atoms = ase.io.read(out, format="extxyz")
        return _result(atoms, atoms.get_stress(voigt=False) * EV_A3_TO_GPA).check_finite(task_dir)

    # ---- NEB: ase.mep.NEB in the task (:func:`dpgen_lite.autotest.ase_task.run_neb`) ----------
    def write_neb_inputs(self, task_dir: Path, initial: Atoms, final: Atoms, setting: dict) -> list[str]:
        ase.io.write(Path(task_dir) / NEB_FINAL_FILE, final, format="vasp", direct=True, sort=False)
        return [NEB_FINAL_FILE, *self.write_inputs(task_dir, initial, setting)]

    def neb_backward_files(self, n_replicas: int) -> list[str]:
        return [NEB_OUT_FILE, NEB_LOG_FILE, LOG_FILE]

    def read_neb(self, task_dir: Path) -> list[TaskResult]:
        out = Path(task_dir) / NEB_OUT_FILE
        if not out.is_file():
            raise TaskFailed(f"{task_dir}: no {NEB_OUT_FILE} (the NEB crashed; see the task's err file)")
        return [_result(a, np.full((3, 3), np.nan)) for a in ase.io.read(out, index=":", format="extxyz")]


def _result(atoms: Atoms, stress: np.ndarray) -> TaskResult:
    """A :class:`TaskResult` of ``atoms`` read back with their energy (eV) and forces (eV/Å)."""
    return TaskResult(Atoms(atoms.get_chemical_symbols(), positions=atoms.positions, cell=atoms.cell.array, pbc=True),
                      float(atoms.get_potential_energy()), stress, np.array(atoms.get_forces()))
