"""The interface every property implements, and helpers the properties share."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
from ase import Atoms
from dargs import Argument

from ...params import ParamError, arg as _a  # noqa: F401  (_a used by the properties)
from ..registry import PROPERTIES
from ..task import DEFAULT_SETTING, TaskResult

register = PROPERTIES.register


def setting_args() -> list[Argument]:
    """Keys of ``cal_setting`` (DP-GEN's names; see :mod:`dpgen_lite.autotest.task`)."""
    return [
        _a("relax_pos", bool, "move the atoms", optional=True),
        _a("relax_shape", bool, "relax the cell shape (needs relax_vol)", optional=True),
        _a("relax_vol", bool, "relax the cell volume", optional=True),
        _a("etol", float, "LAMMPS minimize energy tolerance (relative)", optional=True),
        _a("ftol", float, "LAMMPS minimize force tolerance, eV/Å", optional=True),
        _a("fmax", float, "ASE optimiser: largest force, eV/Å", optional=True),
        _a("maxiter", int, "most minimisation iterations", optional=True),
        _a("maxeval", int, "most force evaluations (LAMMPS)", optional=True),
    ]


class Property:
    """One property of a relaxed crystal: ``make`` the tasks, ``post`` their results.

    Parameters
    ----------
    conf : the normalized entry of ``properties`` (``type``, ``skip``, ``suffix``, ``cal_setting``, own keys)

    Class attributes
    ----------------
    name : the ``type`` value selecting the class
    default_setting : relaxation defaults of its tasks, overridden by ``cal_setting``
    """

    name: ClassVar[str]
    default_setting: ClassVar[dict] = {"relax_pos": True, "relax_shape": False, "relax_vol": False}

    def __init__(self, conf: dict):
        self.conf = conf

    @classmethod
    def args(cls) -> list[Argument]:
        """The property's own keys (dargs)."""
        return []

    @property
    def folder(self) -> str:
        """Folder name under the conf: ``<type>_<suffix>`` (DP-GEN's ``eos_00``)."""
        return f"{self.name}_{self.conf.get('suffix', '00')}"

    def setting(self) -> dict:
        """Relaxation settings of the tasks: defaults < property defaults < ``cal_setting``."""
        return {**DEFAULT_SETTING, **self.default_setting, **(self.conf.get("cal_setting") or {})}

    def check(self, structure: Atoms) -> None:
        """Check the keys against the (unrelaxed) structure before any task runs.

        Raises
        ------
        ParamError
            naming the key, the value and what is allowed.
        """

    def make(self, relaxed: Atoms, folder: Path) -> list[tuple[Atoms, dict]]:
        """The tasks on the relaxed structure: a list of (structure, metadata); ``folder`` may receive
        extra files (phonopy's displacement file)."""
        raise NotImplementedError

    def task_setting(self, meta: dict) -> dict:
        """Settings of the task described by ``meta`` (default: :meth:`setting`)."""
        return self.setting()

    def post(self, results: list[TaskResult], metas: list[dict], relaxed: TaskResult, folder: Path) -> dict:
        """The property from the task results (same order as :meth:`make`), units in the keys.

        ``relaxed``: the relaxation's result (energy per atom e0 = ``relaxed.energy / len(relaxed.atoms)``).
        """
        raise NotImplementedError

    def report(self, result: dict) -> str:
        """``result.out``: the result for people."""
        raise NotImplementedError

    @classmethod
    def scalars(cls, result: dict) -> dict[str, float]:
        """Numbers compared across interactions: ``{"label (unit)": value}``."""
        return {}

    @classmethod
    def plot(cls, ax, result: dict, label: str) -> bool:
        """Draw ``result`` on the matplotlib axes ``ax``; return False when nothing is plotted."""
        return False


def e0_per_atom(relaxed: TaskResult) -> float:
    """Energy per atom of the relaxed structure, eV."""
    return relaxed.energy / len(relaxed.atoms)


def check_vector(conf: dict, key: str, length: int, kind=int) -> None:
    """``conf[key]`` is a list of ``length`` numbers of type ``kind`` (Miller indices, supercells).

    Raises
    ------
    ParamError
        naming the property, key and value.
    """
    value = conf.get(key)
    if value is None:
        return
    ok = isinstance(value, list) and len(value) == length and all(
        isinstance(v, (int, float) if kind is float else int) and not isinstance(v, bool) for v in value)
    if not ok:
        raise ParamError(f"properties[{conf['type']}].{key} = {value!r}: need a list of {length} "
                         f"{'numbers' if kind is float else 'integers'}"
                         + (" (three-index Miller notation; convert four-index hcp indices)" if "miller" in key
                            or "direction" in key else ""))


def supercell(atoms: Atoms, size: list[int]) -> Atoms:
    """``atoms`` repeated ``size`` times along its cell vectors (ASE ``repeat``)."""
    return atoms.repeat(tuple(size))


def table(rows: list[tuple], header: tuple) -> str:
    """Fixed-width text table."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda r: "  ".join(str(x).rjust(w) for x, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(header), *(line(r) for r in rows)]) + "\n"


def fmt(x: float, digits: int = 4) -> str:
    """``x`` with ``digits`` decimals."""
    return f"{x:.{digits}f}"


def as_array(x) -> np.ndarray:
    """``np.asarray`` of floats."""
    return np.asarray(x, dtype=float)
