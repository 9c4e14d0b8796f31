"""Exploration engines: the programs that run the model-deviation MD.

An engine owns its ``param.json`` keys (:meth:`Engine.args`, dargs), which the schema puts
under the ``model_devi_engine`` variant (DP-GEN's key, default ``lammps``).  Engines are
registered by name in :data:`ENGINES`, which imports every module of this package, so adding
an engine is adding one module.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from dargs import Argument

from ..registry import Registry

ENGINES = Registry("dpgen_lite.explore", "model_devi_engine")
register = ENGINES.register


class Engine:
    """One exploration program (the name is the value of ``model_devi_engine``)."""

    name: ClassVar[str]

    @classmethod
    def args(cls) -> list[Argument]:
        """The engine's own ``param.json`` keys (dargs), beside ``model_devi_engine``."""
        return []

    @classmethod
    def check(cls, param: dict, n_systems: int) -> None:
        """Cross-key checks of the engine's keys in a normalized ``param.json``.

        Raises
        ------
        ParamError
            naming the key, the value and what is allowed.
        """

    @classmethod
    def check_files(cls, param: dict, base_dir: Path) -> None:
        """Checks of the files the engine's keys name, paths relative to ``base_dir`` (the run folder).

        Raises
        ------
        ParamError
            naming the key, the file (and the line) and the fix.
        """
