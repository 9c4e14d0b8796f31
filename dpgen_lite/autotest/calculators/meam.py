"""MEAM in LAMMPS: ``model`` = [library file, parameter file] (parameter file may be omitted)."""

from __future__ import annotations

from .base import register
from .lammps import NamedLammps


@register
class Meam(NamedLammps):
    """``pair_style meam``; ``pair_coeff * * ../<library> <elements> ../<param> <elements>``."""

    name = "meam"

    def pair_lines(self):
        names = self.model_names()
        param = names[1] if len(names) > 1 else "NULL"
        return ["pair_style meam", f"pair_coeff * * {names[0]} {self.elements()} {param} {self.elements()}"]
