"""The state every step receives: validated parameters, machine sections and folders."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ase.data import atomic_masses, atomic_numbers

from .dispatch import default_stage

log = logging.getLogger("dpgen_lite")

TRAIN, MODEL_DEVI, FP = "00.train", "01.model_devi", "02.fp"


@dataclass
class Context:
    """One ``dpgen run``: ``param`` and ``mdata`` validated, ``work_dir`` holds ``record.dpgen``.

    Relative paths in ``param`` are resolved against ``work_dir`` (as in DP-GEN: the
    folder ``dpgen run`` is started in).
    """

    param: dict
    mdata: dict
    work_dir: Path

    def iter_name(self, iteration: int) -> str:
        """``iter.%06d``"""
        return f"iter.{iteration:06d}"

    def path(self, iteration: int, stage: str) -> Path:
        """``work_dir/iter.%06d/<stage>``"""
        return self.work_dir / self.iter_name(iteration) / stage

    def rel(self, iteration: int, stage: str) -> str:
        """``iter.%06d/<stage>`` relative to ``work_dir`` (dpdispatcher's work base)."""
        return f"{self.iter_name(iteration)}/{stage}"

    def stage_conf(self, stage: str) -> dict:
        """``machine.json``'s section for ``stage`` (``train``, ``model_devi``, ``fp``), or the default."""
        return self.mdata.get(stage) or default_stage(stage)

    @property
    def masses(self) -> list[float]:
        """Atomic masses in ``type_map`` order, g/mol."""
        return masses(self.param)


def masses(param: dict) -> list[float]:
    """Atomic masses in ``type_map`` order, g/mol: ``mass_map``, or ASE's with ``"auto"``."""
    if param["mass_map"] == "auto":
        return [float(atomic_masses[atomic_numbers[e]]) for e in param["type_map"]]
    return list(param["mass_map"])
