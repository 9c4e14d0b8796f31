"""One autotest task: a folder with ``POSCAR`` (Å) and ``task.json`` (what to relax), and its result.

``task.json`` keys (DP-GEN's ``cal_setting`` names):

- ``relax_pos`` (bool) move the atoms; ``relax_shape`` / ``relax_vol`` (bool) change the cell's
  shape / volume towards zero stress (shape without volume is refused by the schema);
- ``fix_axes`` (3 bools) Cartesian axes along which no atom moves (the γ-line relaxes along z only);
- ``relax_height`` (bool) the cell's height along z relaxes towards zero σ_zz, its other lengths
  and tilts fixed (the γ-line's tilted cell, so that the fault can open along its normal);
- ``etol`` (LAMMPS energy tolerance, relative), ``ftol`` (LAMMPS force tolerance, eV/Å),
  ``fmax`` (ASE optimiser: largest force, eV/Å), ``maxiter``, ``maxeval`` (steps).

After the run, ``post`` stores a :class:`TaskResult` as ``result_task.json`` and the final
structure as ``CONTCAR``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms

TASK_FILE = "task.json"
RESULT_FILE = "result_task.json"

#: relaxation settings and their defaults (DP-GEN's cal_setting keys, plus fmax and fix_axes)
DEFAULT_SETTING = {
    "relax_pos": True, "relax_shape": True, "relax_vol": True, "fix_axes": [False, False, False],
    "relax_height": False,
    "etol": 0.0, "ftol": 1e-10, "fmax": 1e-4, "maxiter": 5000, "maxeval": 500000,
}


class TaskFailed(RuntimeError):
    """A finished task left no usable result (missing output, non-finite numbers)."""


@dataclass
class TaskResult:
    """What a calculator returns for one task, in the frame of the task's ``POSCAR``.

    Attributes
    ----------
    atoms : final structure (Å; relaxed if the task relaxed)
    energy : potential energy, eV
    stress : (3, 3) stress, GPa, tensile positive (ASE's sign; LAMMPS pressure = -stress)
    forces : (n_atoms, 3) forces, eV/Å
    """

    atoms: Atoms
    energy: float
    stress: np.ndarray
    forces: np.ndarray

    def save(self, task_dir: Path) -> None:
        """Write ``result_task.json`` and ``CONTCAR`` into ``task_dir``."""
        task_dir = Path(task_dir)
        ase.io.write(task_dir / "CONTCAR", self.atoms, format="vasp", direct=True)
        data = {
            "energy_eV": self.energy, "stress_GPa": np.asarray(self.stress).tolist(),
            "forces_eV_per_A": np.asarray(self.forces).tolist(),
            "cell_A": self.atoms.cell.array.tolist(), "positions_A": self.atoms.positions.tolist(),
            "symbols": self.atoms.get_chemical_symbols(),
        }
        (task_dir / RESULT_FILE).write_text(json.dumps(data, indent=1))

    @classmethod
    def load(cls, task_dir: Path) -> "TaskResult":
        """Read what :meth:`save` wrote.

        Raises
        ------
        TaskFailed
            if ``result_task.json`` is missing (the task was not posted).
        """
        path = Path(task_dir) / RESULT_FILE
        if not path.is_file():
            raise TaskFailed(f"{task_dir}: no {RESULT_FILE}; run `dpgen autotest post` first")
        d = json.loads(path.read_text())
        atoms = Atoms(d["symbols"], positions=d["positions_A"], cell=d["cell_A"], pbc=True)
        return cls(atoms, d["energy_eV"], np.array(d["stress_GPa"]), np.array(d["forces_eV_per_A"]))

    def check_finite(self, task_dir: Path) -> "TaskResult":
        """Return self if energy, stress and forces are finite.

        Raises
        ------
        TaskFailed
            naming ``task_dir``.
        """
        for name, value in (("energy", self.energy), ("stress", self.stress), ("forces", self.forces)):
            if not np.all(np.isfinite(value)):
                raise TaskFailed(f"{task_dir}: non-finite {name} in the calculator's output")
        return self


def write_task(task_dir: Path, atoms: Atoms, setting: dict) -> None:
    """Write ``POSCAR`` and ``task.json`` (``setting``: keys of :data:`DEFAULT_SETTING`)."""
    task_dir = Path(task_dir)
    task_dir.mkdir(parents=True, exist_ok=True)
    ase.io.write(task_dir / "POSCAR", atoms, format="vasp", direct=True, sort=False)
    (task_dir / TASK_FILE).write_text(json.dumps({**DEFAULT_SETTING, **setting}, indent=1))


def read_task(task_dir: Path) -> tuple[Atoms, dict]:
    """``POSCAR`` and the settings of ``task.json`` of a task folder."""
    task_dir = Path(task_dir)
    atoms = ase.io.read(task_dir / "POSCAR", format="vasp")
    return atoms, json.loads((task_dir / TASK_FILE).read_text())
