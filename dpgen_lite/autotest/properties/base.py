"""The interface every property implements, and helpers the properties share."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import ClassVar

import ase.io
import numpy as np
from ase import Atoms
from dargs import Argument

from ...params import ParamError, arg as _a  # noqa: F401  (_a used by the properties)
from ..registry import PROPERTIES
from ..task import DEFAULT_SETTING, TaskResult

#: the relaxation flags of ``cal_setting``
RELAX_FLAGS = ("relax_pos", "relax_shape", "relax_vol")
#: ``cal_setting`` keys of DP-GEN that set VASP INCAR tags
VASP_SETTING = ("ediff", "ediffg", "encut", "kspacing", "kgamma")
#: ``cal_setting`` keys of DP-GEN that dpgen_lite refuses -> why, and what to do instead
REFUSED_SETTING = {
    "input_prop": "dpgen_lite writes the LAMMPS / fp input of every task itself (a user's in.lammps or INCAR "
                  "is not read); remove it and give the minimisation in cal_setting (etol, ftol, maxiter, "
                  "maxeval, fmax)",
    "overwrite_interaction": "one property runs with the file's interaction; put the property in a second "
                             "file with the other interaction (or give a list of named interactions)",
}

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
        *[_a(k, [int, float, bool], f"DP-GEN's VASP INCAR tag {k.upper()}: no effect on LAMMPS or ASE "
             "interactions, refused with fp", optional=True) for k in VASP_SETTING],
        *[_a(k, [str, dict, type(None)], f"DP-GEN's {k}: refused", optional=True) for k in REFUSED_SETTING],
    ]


def check_setting(where: str, conf: dict) -> None:
    """Refuse DP-GEN's ``cal_setting`` keys that dpgen_lite cannot honour, and relaxation flags set
    true with ``cal_type`` static.

    Raises
    ------
    ParamError
        naming the key, the value, why and the fix.
    """
    setting = conf.get("cal_setting") or {}
    for key, why in REFUSED_SETTING.items():
        if setting.get(key):
            raise ParamError(f"{where}.cal_setting.{key} = {setting[key]!r}: refused: {why}")
    if conf.get("cal_type") == "static":
        on = [k for k in RELAX_FLAGS if setting.get(k)]
        if on:
            raise ParamError(f"{where}.cal_type = 'static' with cal_setting {', '.join(f'{k} = true' for k in on)}: a "
                             "static task relaxes nothing; remove the flags or set cal_type 'relaxation'")


class Property:
    """One property of a relaxed crystal: ``make`` the tasks, ``post`` their results.

    Parameters
    ----------
    conf : the normalized entry of ``properties``: ``type``, ``skip``, ``suffix``, ``cal_type``,
        ``cal_setting``, DP-GEN's ``init_from_suffix`` / ``output_suffix`` (refine: the tasks restart
        from the final structures of ``<type>_<init_from_suffix>``, results in ``<type>_<output_suffix>``),
        ``start_confs_path`` (the tasks start from ``<path>/<conf>/relaxation/relax_task/CONTCAR``; the
        schema adds it resolved as ``start_confs_path_abs``),
        and the property's own keys

    Class attributes
    ----------------
    name : the ``type`` value selecting the class
    default_setting : relaxation defaults of its tasks, overridden by ``cal_setting``
    not_derived : the reason, for properties whose tasks cannot be refined or reproduced
    """

    name: ClassVar[str]
    default_setting: ClassVar[dict] = {"relax_pos": True, "relax_shape": False, "relax_vol": False}
    #: files :meth:`make` writes into the property folder, copied along by a refine
    extra_files: ClassVar[list[str]] = []
    #: why neither a refine (``output_suffix``) nor a reproduce (``reproduce: true``) applies; None when both do
    not_derived: ClassVar[str | None] = None

    def __init__(self, conf: dict):
        self.conf = conf

    @classmethod
    def args(cls) -> list[Argument]:
        """The property's own keys (dargs)."""
        return []

    @property
    def folder(self) -> str:
        """Folder name under the conf: ``<type>_<suffix>`` (DP-GEN's ``eos_00``), ``<type>_<output_suffix>``
        for a refine."""
        return f"{self.name}_{self.conf.get('output_suffix') or self.conf.get('suffix', '00')}"

    @property
    def refine(self) -> bool:
        """Whether the tasks restart from another folder's results (DP-GEN's ``output_suffix``)."""
        return bool(self.conf.get("output_suffix"))

    def setting(self) -> dict:
        """Relaxation settings of the tasks: defaults < property defaults < ``cal_setting``;
        ``cal_type`` static (DP-GEN's single point) turns every relaxation off."""
        out = {**DEFAULT_SETTING, **self.default_setting, **(self.conf.get("cal_setting") or {})}
        if self.conf.get("cal_type") == "static":
            out.update(dict.fromkeys(RELAX_FLAGS, False))
        return out

    def start_structure(self, relaxed: Atoms, conf_dir: Path) -> Atoms:
        """The structure the tasks are built on: ``relaxed``, or with ``start_confs_path`` the
        ``CONTCAR`` of that folder's relaxation of the same structure (DP-GEN's meaning; energies
        stay referred to this interaction's relaxation)."""
        path = self.start_file(conf_dir)
        return relaxed if path is None else ase.io.read(path, format="vasp")

    def start_file(self, conf_dir: Path) -> Path | None:
        """``<start_confs_path>/<conf name>/relaxation/relax_task/CONTCAR``, None without the key.

        Raises
        ------
        ParamError
            naming the key and the missing file.
        """
        start = self.conf.get("start_confs_path")
        if not start:
            return None
        path = Path(self.conf["start_confs_path_abs"]) / Path(conf_dir).name / "relaxation/relax_task/CONTCAR"
        if not path.is_file():
            raise ParamError(f"properties[{self.name}].start_confs_path = {start!r}: {path} does not exist; "
                             "relax the structure there first, or remove the key to start from this relaxation")
        return path

    def sources(self, conf_dir: Path) -> list[tuple[Path, dict]]:
        """For a refine, the finished tasks of ``<conf_dir>/<type>_<init_from_suffix>`` with their
        metadata, in task order; [] otherwise.

        Raises
        ------
        ParamError
            when that folder or a task's result is missing.
        """
        if not self.refine:
            return []
        init = Path(conf_dir) / f"{self.name}_{self.conf.get('init_from_suffix') or '00'}"
        where = f"properties[{self.name}].init_from_suffix = {self.conf.get('init_from_suffix') or '00'!r}"
        if not (init / "tasks.json").is_file():
            raise ParamError(f"{where}: {init} has no tasks.json; make, run and post that property first")
        out = []
        for entry in json.loads((init / "tasks.json").read_text())["tasks"]:
            if not (init / entry["task"] / "result_task.json").is_file():
                raise ParamError(f"{where}: {init / entry['task']} has no result_task.json; run and post it first")
            out.append((init / entry["task"], entry["meta"]))
        return out

    def make_tasks(self, relaxed: Atoms, folder: Path) -> list[tuple[Atoms, dict]]:
        """:meth:`make`, or for a refine the final structures and metadata of the tasks refined
        (with :attr:`extra_files` copied)."""
        if not self.refine:
            return self.make(relaxed, folder)
        found = self.sources(Path(folder).parent)
        for name in self.extra_files:
            shutil.copyfile(found[0][0].parent / name, Path(folder) / name)
        return [(TaskResult.load(task).atoms, meta) for task, meta in found]

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

    def structures(self, atoms: Atoms, conf_dir: Path) -> list[Atoms]:
        """The unrelaxed structures the property computes on ``atoms`` (a special set's generator,
        :func:`dpgen_lite.train.final.generated_structures`; files the keys name are relative to
        ``conf_dir``).  Default: the starting structures of :meth:`make`'s tasks."""
        return [a for a, _ in self.make(atoms, None)]

    def check_files(self, conf_dir: Path, structure: Atoms) -> None:
        """Check the files the keys name, relative to the structure's folder ``conf_dir``, against the
        (unrelaxed) ``structure`` before any task runs (default: none are named).

        Raises
        ------
        ParamError
            naming the key, the value and the fix.
        """

    def check_interaction(self, calc, where: str) -> None:
        """Check that the interaction ``calc`` can run this property's tasks before any task is
        written (default: every one can); ``where`` starts the message (file and property folder).

        Raises
        ------
        ParamError
            naming the interaction and the fix.
        """

    # ---- the kind of task: a minimisation by default (the NEB property runs a band) ----------
    def write_inputs(self, calc, task_dir: Path, atoms: Atoms, setting: dict, meta: dict) -> list[str]:
        """Write the calculator's inputs of the task ``meta`` into ``task_dir`` (which holds POSCAR and
        task.json); return the files to forward.  Default: a minimisation (``calc.write_inputs``)."""
        return calc.write_inputs(task_dir, atoms, setting)

    def task_command(self, calc, stage_command: str | None, meta: dict) -> str:
        """Command of the task ``meta`` (default: the calculator's, ``calc.command``)."""
        return calc.command(stage_command)

    def task_backward_files(self, calc, meta: dict) -> list[str]:
        """Files the task ``meta`` brings back (default: the calculator's)."""
        return list(calc.backward_files)

    def read_result(self, calc, task_dir: Path) -> TaskResult:
        """The result of a finished task (default: ``calc.read_result``).

        Raises
        ------
        dpgen_lite.autotest.task.TaskFailed
            for a task without usable output.
        """
        return calc.read_result(task_dir)

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
                         + (" (three-index Miller notation; four indices are for hexagonal lattices)" if "miller" in key
                            or "direction" in key else ""))


def is_hexagonal(structure) -> bool:
    """Whether the lattice of ``structure`` (pymatgen Structure) is hexagonal (hcp, and trigonal
    crystals on hexagonal axes): its planes and directions are then named by four Miller-Bravais
    indices."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
    return SpacegroupAnalyzer(structure).get_lattice_type() == "hexagonal"


def three_index(hkil: list[int]) -> tuple[int, int, int]:
    """Plane (h k i l) → (h k l) of the hexagonal cell (a₁, a₂ at 120°, c); i = -(h + k) is redundant."""
    h, k, _, l_ = hkil
    return h, k, l_


def four_index(hkl: tuple[int, int, int]) -> list[int]:
    """Plane (h k l) of the hexagonal cell → (h k i l), i = -(h + k)."""
    h, k, l_ = hkl
    return [h, k, -(h + k), l_]


def direction_three_index(uvtw: list[int]) -> tuple[int, int, int]:
    """Direction [U V T W] (U a₁ + V a₂ + T a₃ + W c, a₃ = -(a₁ + a₂)) → [u v w] of the hexagonal cell:
    u = U - T = 2U + V, v = V - T = 2V + U, w = W, divided by their greatest common divisor (the shortest
    lattice vector along it: [1 1 -2 0] → [1 1 0], length a).  Formula: e.g. Otte & Crocker, Phys. Stat.
    Sol. 9, 441 (1965); APEX's ``direction_miller_bravais_to_miller`` without the division."""
    import math
    u, v, _, w = uvtw
    uvw = (2 * u + v, 2 * v + u, w)
    g = math.gcd(*uvw) or 1
    return tuple(x // g for x in uvw)


def miller_bravais(where: str, value, direction: bool = False, example: str = "") -> tuple[int, int, int]:
    """Four Miller-Bravais indices of a plane (h k i l, i = -(h + k)) or, with ``direction``, of a
    direction [u v t w] (t = -(u + v)), checked and converted to three indices of the hexagonal cell
    (:func:`three_index`, :func:`direction_three_index`).

    ``where``: ``"properties[x].key = value"`` for the messages; ``example``: a valid value named in
    the fix.

    Raises
    ------
    ParamError
        for anything but four integers, or a third index that is not minus the sum of the first two.
    """
    names = "uvtw" if direction else "hkil"
    hkl, rule = f"[{', '.join(names)}]", f"{names[2]} = -({names[0]} + {names[1]})"
    if not (isinstance(value, list) and len(value) == 4
            and all(isinstance(x, int) and not isinstance(x, bool) for x in value)):
        raise ParamError(f"{where}: need a list of 4 integers (the lattice is hexagonal: four Miller-Bravais "
                         f"indices {hkl} with {rule}{', e.g. ' + example if example else ''})")
    if value[2] != -(value[0] + value[1]):
        raise ParamError(f"{where}: {names[2]} must be -({names[0]} + {names[1]}) = {-(value[0] + value[1])} "
                         f"in {hkl}")
    return direction_three_index(value) if direction else three_index(value)


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
