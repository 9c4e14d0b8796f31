"""The interface every fp (first-principles labelling) style implements.

An fp style turns one unlabelled frame into a task folder (``write_inputs``),
names the command that labels it, and reads the result back as a
``dpdata.LabeledSystem`` (``read_label``).  A style owns its ``param.json`` keys
(:meth:`FpStyle.args`, dargs); the schema builds the ``fp_style`` variant from the
registered styles.  Styles are registered by name in :data:`FP_STYLES`, which imports
every module of this package, so adding a DFT code is adding one module.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import dpdata
import numpy as np
from dargs import Argument

from ..params import arg
from ..registry import Registry


class FpTaskFailed(Exception):
    """An fp task produced no trustworthy label (crash, unconverged SCF, NaN, missing output)."""


FP_STYLES = Registry("dpgen_lite.label", "fp_style")
register = FP_STYLES.register


def get_style(name: str) -> type["FpStyle"]:
    """The fp style class registered as ``name``.

    Raises
    ------
    KeyError
        if no style has that name (the message lists the known ones).
    """
    FP_STYLES.load()
    if name not in FP_STYLES:
        raise KeyError(f"fp_style = {name!r}: allowed {', '.join(sorted(FP_STYLES))}")
    return FP_STYLES[name]


def pseudo_args(what: str = "pseudopotential") -> list[Argument]:
    """``fp_pp_path`` and ``fp_pp_files``: the keys of styles that read pseudopotential files."""
    return [
        arg("fp_pp_path", str, f"folder of the {what} files", default=None),
        arg("fp_pp_files", [list, dict], f"{what} files in type_map order, or {{element: file}}", default=None),
    ]


class FpStyle:
    """One labelling program.

    Parameters
    ----------
    param : dict
        The validated ``param.json`` (or init_bulk parameters): the style reads
        its own keys (``fp_params``, ``user_fp_params``, ...) and ``type_map``.
    base_dir : Path
        Folder that relative paths in ``param`` are resolved against.
    """

    name: ClassVar[str]
    #: files a finished task brings back (dpdispatcher's backward files)
    output_files: ClassVar[list[str]] = []
    #: where the task command's standard output goes (DP-GEN's Gaussian commands print the log there)
    stdout_file: ClassVar[str] = "fp.log"

    def __init__(self, param: dict, base_dir: Path):
        self.param = param
        self.type_map: list[str] = list(param["type_map"])
        self.base_dir = Path(base_dir)

    @classmethod
    def args(cls) -> list[Argument]:
        """The style's own ``param.json`` keys (dargs), beside ``fp_style``."""
        return []

    def check(self) -> None:
        """Validate the style's keys before any work starts.

        Raises
        ------
        ValueError
            naming the key, the value and what is allowed.
        """

    def write_inputs(self, frame: dpdata.System, task_dir: Path) -> list[str]:
        """Write the input files labelling ``frame`` (one frame, lengths in Å) into ``task_dir``.

        Returns the file names the task needs forwarded to the machine.
        """
        raise NotImplementedError

    def default_command(self) -> str:
        """Command run inside a task folder when ``machine.json`` gives none."""
        raise NotImplementedError

    def batch_command(self, folders: list[str]) -> str | None:
        """Command labelling several task folders (paths relative to the first) in one process,
        or None where the style labels one frame per program run (the default).  Used only with
        the style's default command on a stage whose tasks run in place here
        (:func:`dpgen_lite.label.stage.run_fp_tasks`)."""
        return None

    def read_label(self, task_dir: Path) -> dpdata.LabeledSystem:
        """Read the labelled frame of a finished task.

        Returns
        -------
        dpdata.LabeledSystem
            one frame: energies (eV), forces ``(1, n_atoms, 3)`` eV/Å, virials ``(1, 3, 3)`` eV.

        Raises
        ------
        FpTaskFailed
            when the output is missing, unconverged or not finite.
        """
        raise NotImplementedError


def check_finite(system: dpdata.LabeledSystem, task_dir: Path) -> dpdata.LabeledSystem:
    """Return ``system`` if it has exactly one frame with finite energy, forces and virial.

    Raises
    ------
    FpTaskFailed
        naming ``task_dir`` and what is wrong.
    """
    if system.get_nframes() != 1:
        raise FpTaskFailed(f"{task_dir}: expected 1 labelled frame, read {system.get_nframes()}")
    for key in ("energies", "forces", "virials"):
        if key in system.data and not np.all(np.isfinite(system.data[key])):
            raise FpTaskFailed(f"{task_dir}: non-finite {key} in the output")
    return system
