"""The interface every autotest calculator implements, and the helpers they share."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import ClassVar

from dargs import Argument  # noqa: F401  (type of args())
from ase import Atoms

from ...params import ParamError
from ..registry import CALCULATORS
from ..task import TaskResult

register = CALCULATORS.register


class Calculator:
    """One interaction (``param.json``'s ``interaction``): writes task inputs, names the command, reads results.

    Parameters
    ----------
    inter : the normalized ``interaction`` dict (``type``, ``type_map``, ``model``, ...)
    base_dir : folder that relative paths (``model``) are resolved against

    Class attributes
    ----------------
    name : the ``type`` value selecting this class
    stage : the ``machine.json`` stage whose machine runs the tasks (``model_devi`` or ``fp``)
    can_relax : whether the calculator can relax positions or the cell
    """

    name: ClassVar[str]
    stage: ClassVar[str] = "model_devi"
    can_relax: ClassVar[bool] = True
    #: files a finished task brings back
    backward_files: ClassVar[list[str]] = []

    def __init__(self, inter: dict, base_dir: Path):
        self.inter = inter
        self.base_dir = Path(base_dir)
        type_map = inter["type_map"]
        if isinstance(type_map, dict):  # DP-GEN's {"Cu": 0, "Al": 1}
            type_map = [k for k, _ in sorted(type_map.items(), key=lambda kv: kv[1])]
        self.type_map: list[str] = list(type_map)

    @classmethod
    def args(cls) -> list[Argument]:
        """Keys of this interaction type besides ``type``, ``type_map`` and ``name`` (dargs)."""
        return []

    # ---- files -------------------------------------------------------------------------
    def model_files(self) -> list[Path]:
        """Absolute paths of the files the interaction needs (potentials, frozen models)."""
        model = self.inter.get("model")
        if model is None:
            return []
        return [self.resolve(m) for m in ([model] if isinstance(model, str) else model)]

    def resolve(self, path: str) -> Path:
        """``path`` relative to ``base_dir`` (absolute paths unchanged)."""
        return (self.base_dir / path).resolve()

    def check(self) -> None:
        """Validate the interaction before any task is written.

        Raises
        ------
        ParamError
            for a missing model file or a bad key.
        """
        for path in self.model_files():
            if not path.is_file():
                raise ParamError(f"interaction.model: {path} does not exist; give the path of the "
                                 f"potential / model file relative to {self.base_dir}")

    def copy_models(self, folder: Path) -> list[str]:
        """Copy the model files into ``folder`` (a property folder); return their names there."""
        names = []
        for path in self.model_files():
            shutil.copyfile(path, Path(folder) / path.name)
            names.append(path.name)
        return names

    # ---- tasks -------------------------------------------------------------------------
    def write_inputs(self, task_dir: Path, atoms: Atoms, setting: dict) -> list[str]:
        """Write the calculator's input files into ``task_dir`` (which already holds POSCAR, task.json).

        ``setting``: relaxation settings (:data:`dpgen_lite.autotest.task.DEFAULT_SETTING`); model
        files are in the parent folder. Returns the files to forward.
        """
        raise NotImplementedError

    def default_command(self) -> str:
        """Command run in a task folder when ``machine.json`` gives none."""
        raise NotImplementedError

    def command(self, stage_command: str | None) -> str:
        """The task command: ``interaction.command``, else the machine stage's, else :meth:`default_command`."""
        return self.inter.get("command") or stage_command or self.default_command()

    def read_result(self, task_dir: Path) -> TaskResult:
        """Read a finished task (energy eV, stress GPa, forces eV/Å, final atoms in the POSCAR frame).

        Raises
        ------
        dpgen_lite.autotest.task.TaskFailed
            when the output is missing or not finite.
        """
        raise NotImplementedError

    # ---- nudged elastic band tasks (:mod:`dpgen_lite.autotest.properties.neb`) ----------
    def write_neb_inputs(self, task_dir: Path, initial: Atoms, final: Atoms, setting: dict) -> list[str]:
        """Write the inputs of a climbing-image NEB task: relax ``initial`` (already in ``task_dir`` as
        POSCAR) and ``final`` (same atoms, same cell) at fixed cell as ``setting`` asks, then relax the
        band of ``setting["neb"]`` (``images`` intermediate images, ``climb``, ``spring`` eV/Å²,
        ``fmax`` eV/Å, ``steps``).  Returns the files to forward.

        Raises
        ------
        ParamError
            for a calculator that runs no NEB (this default).
        """
        raise ParamError(f"interaction type {self.name!r} runs no NEB; use a LAMMPS or an ASE interaction")

    def neb_command(self, stage_command: str | None, n_replicas: int) -> str:
        """Command of a NEB task of ``n_replicas`` images, end points included (default :meth:`command`)."""
        return self.command(stage_command)

    def neb_backward_files(self, n_replicas: int) -> list[str]:
        """Files a finished NEB task of ``n_replicas`` images brings back."""
        return list(self.backward_files)

    def read_neb(self, task_dir: Path) -> list[TaskResult]:
        """The relaxed band of a finished NEB task, end points included, in the POSCAR frame
        (energy eV, forces eV/Å: the interaction's, without spring forces).

        Raises
        ------
        dpgen_lite.autotest.task.TaskFailed
            when the output is missing or not finite.
        """
        raise NotImplementedError


def get_calculator(inter: dict, base_dir: Path) -> Calculator:
    """Instantiate the calculator of ``inter['type']``.

    Raises
    ------
    ParamError
        for an unknown type (names the known ones).
    """
    try:
        cls = CALCULATORS.get(inter["type"])
    except KeyError as err:
        raise ParamError(f"interaction.type: {err.args[0]}") from None
    return cls(inter, base_dir)
