"""DFT (or any labelling program) through the fp styles of :mod:`dpgen_lite.label`: single points only.

``interaction``::

    {"type": "fp", "fp_style": "cp2k", "fp_params": {"cutoff": 400, "kpoints": [6, 6, 6]},
     "type_map": ["Cu"]}

The style writes the inputs (``write_inputs``), names the command and reads the label
(``read_label``: energy eV, forces eV/Å, virial eV).  Stress (GPa, tensile positive) =
-virial / volume (dpdata's convention, virial = -σ V).  No relaxation: every ``cal_setting`` must
set relax_pos, relax_shape and relax_vol false (checked up front), so the structures given must
already be relaxed with the same DFT settings; the relaxation step then is a single point.
"""

from __future__ import annotations

from pathlib import Path

import ase.io
import dpdata
import numpy as np
from ase import Atoms

from ...label.base import FpTaskFailed, get_style
from ...params import ParamError, arg
from ..task import TaskFailed, TaskResult
from ..units import EV_A3_TO_GPA
from .base import Calculator, register


@register
class FpCalculator(Calculator):
    """Single points with an fp style (``fp_style`` + its keys ``fp_params``, ``user_fp_params``, ...)."""

    name = "fp"
    stage = "fp"
    can_relax = False

    @classmethod
    def args(cls):
        return [
            arg("fp_style", str, "fp style of dpgen_lite.label (ase, cp2k, ...)"),
            arg("fp_params", dict, "parameters of the fp style", default=None),
            arg("user_fp_params", dict, "fp input sections given verbatim (cp2k)", default=None),
            arg("external_input_path", str, "fp input template (cp2k)", default=None),
        ]

    def style(self):
        """The fp style object (label.base.FpStyle) built from the interaction's keys.

        Raises
        ------
        ParamError
            for an unknown style.
        """
        try:
            cls = get_style(self.inter["fp_style"])
        except KeyError as err:
            raise ParamError(f"interaction.{err.args[0]}") from None
        return cls({**self.inter, "type_map": self.type_map}, self.base_dir)

    @property
    def backward_files(self):
        return list(self.style().output_files)

    def check(self) -> None:
        super().check()
        try:
            self.style().check()
        except (KeyError, ValueError) as err:
            raise ParamError(f"interaction: {err.args[0]}") from None

    def write_inputs(self, task_dir: Path, atoms: Atoms, setting: dict) -> list[str]:
        frame = dpdata.System(atoms, fmt="ase/structure", type_map=self.type_map)
        return self.style().write_inputs(frame, Path(task_dir))

    def default_command(self) -> str:
        return self.style().default_command()

    def read_result(self, task_dir: Path) -> TaskResult:
        task_dir = Path(task_dir)
        try:
            label = self.style().read_label(task_dir)
        except FpTaskFailed as err:
            raise TaskFailed(str(err)) from None
        poscar = ase.io.read(task_dir / "POSCAR", format="vasp")
        want = np.array([self.type_map.index(s) for s in poscar.get_chemical_symbols()])
        forces = label["forces"][0]
        if not np.array_equal(want, label["atom_types"]):  # the style wrote the atoms sorted by type
            forces = np.empty_like(forces)
            forces[np.argsort(want, kind="stable")] = label["forces"][0]
        virial = label["virials"][0] if "virials" in label.data else np.full((3, 3), np.nan)
        stress = -virial / poscar.get_volume() * EV_A3_TO_GPA
        return TaskResult(poscar, float(label["energies"][0]), stress, forces).check_finite(task_dir)
