"""Deep Potential models in LAMMPS (``pair_style deepmd``, frozen or compressed ``.pb`` / ``.pth``)."""

from __future__ import annotations

from ...lammps_exe import lmp_command
from ...params import arg
from .base import register
from .lammps import NamedLammps


@register
class Deepmd(NamedLammps):
    """``pair_style deepmd ../<model>``; ``pair_coeff * * <elements>`` (types mapped by name).

    The task runs the LAMMPS binary of the ``lammps`` package with the DeePMD plugin loaded
    (:func:`dpgen_lite.lammps_exe.lmp_command`); ``interaction.command`` or the machine's command
    (e.g. ``lmp``) override it.
    """

    name = "deepmd"

    @classmethod
    def args(cls):
        return [*super().args(), arg("deepmd_version", str, "DP-GEN's deepmd-kit version switch: ignored "
                                     "(the installed deepmd-kit's plugin runs the model)", default=None)]

    def pair_lines(self):
        return [f"pair_style deepmd {self.model_names()[0]}", f"pair_coeff * * {self.elements()}"]

    def executable(self) -> str:
        return lmp_command(deepmd=True)
