"""EAM potentials in LAMMPS: ``eam`` (funcfl, one element), ``eam_alloy`` (setfl), ``eam_fs`` (Finnis-Sinclair)."""

from __future__ import annotations

from ...params import ParamError
from .base import register
from .lammps import NamedLammps


@register
class EamAlloy(NamedLammps):
    """``pair_style eam/alloy``; ``pair_coeff * * ../<model> <elements>``."""

    name = "eam_alloy"
    style = "eam/alloy"

    def pair_lines(self):
        return [f"pair_style {self.style}", f"pair_coeff * * {self.model_names()[0]} {self.elements()}"]


@register
class EamFs(EamAlloy):
    """``pair_style eam/fs``; ``pair_coeff * * ../<model> <elements>``."""

    name = "eam_fs"
    style = "eam/fs"


@register
class Eam(NamedLammps):
    """``pair_style eam`` (DYNAMO funcfl file, e.g. ``Cu_u3.eam``): one element only."""

    name = "eam"

    def check(self):
        super().check()
        if len(self.type_map) != 1:
            raise ParamError(f"interaction.type_map = {self.type_map}: type 'eam' (funcfl) takes one "
                             "element; use eam_alloy for alloys")

    def pair_lines(self):
        return ["pair_style eam", f"pair_coeff 1 1 {self.model_names()[0]}"]
