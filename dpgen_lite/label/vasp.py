"""fp style ``vasp``: label frames with VASP (DP-GEN's keys).

``param.json``::

    "fp_style": "vasp",
    "fp_pp_path": "pp",                       # folder of the POTCARs (relative to the run folder)
    "fp_pp_files": ["POTCAR.Al", "POTCAR.Cu"],  # type_map order, as DP-GEN; or {"Cu": ..., "Al": ...}
    "fp_incar": "INCAR",                      # one SCF: NSW = 0 (or absent), KSPACING + KGAMMA
    "fp_aniso_kspacing": [0.2, 0.2, 0.5]      # optional, 1/Å: writes KPOINTS, drops KSPACING

Each task folder gets ``POSCAR`` (dpdata: atoms grouped by element in ``type_map`` order;
elements absent from the frame left out), ``INCAR`` (the user's, with KSPACING removed when
``fp_aniso_kspacing`` writes a ``KPOINTS``), and ``POTCAR``: the element POTCARs concatenated
in the POSCAR's element order.  The command (``vasp_std`` unless machine.json says otherwise)
writes ``OUTCAR``, read by dpdata's ``vasp/outcar`` (energy eV, forces eV/Å, virial eV from the
stress in kB times the volume).

Checked at start (:meth:`VaspStyle.check`): every POTCAR exists and its first line / ``TITEL``
names the element it is used for; the INCAR asks for one ionic step (``NSW`` 0, 1 or absent),
computes the stress (``ISIF`` not 0), and sets ``KSPACING`` and ``KGAMMA`` unless
``fp_aniso_kspacing`` is given.  A task is failed (:class:`~.base.FpTaskFailed`) when OUTCAR is
missing or holds no energy (crash), when an ionic step used all ``NELM`` electronic steps
(VASP 5 prints "aborting loop because EDIFF is reached" even then, so dpdata's rule
"iterations >= NELM means unconverged" is used), or when the atoms in OUTCAR differ from POSCAR.
``cvasp`` (DP-GEN's Custodian switch) is accepted and ignored.
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import dpdata
from pymatgen.io.vasp import Incar

from dargs import Argument

from ..params import arg
from .base import FpTaskFailed, pseudo_args, register
from .pseudo import PseudoStyle, checked_label, kspacing_mesh, potcar_element

log = logging.getLogger(__name__)

OUTCAR = "OUTCAR"


def read_incar(path: Path) -> Incar:
    """The INCAR at ``path`` as pymatgen's :class:`~pymatgen.io.vasp.Incar` (upper-case keys, typed values).

    Raises
    ------
    ValueError
        if the file is missing or unreadable.
    """
    if not Path(path).is_file():
        raise ValueError(f"fp_incar = {str(path)!r}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Incar.from_file(path)
    except Exception as err:
        raise ValueError(f"fp_incar = {str(path)!r}: not a readable INCAR ({err})") from err


def check_incar(incar: Incar, path: Path, aniso_kspacing) -> None:
    """Check that ``incar`` (read from ``path``) gives one labelled SCF frame.

    Raises
    ------
    ValueError
        for ``NSW`` > 1 (several ionic steps), ``ISIF = 0`` (no stress), ``IBRION`` asking for
        a finite-difference run (5-8), or, without ``aniso_kspacing``, no ``KSPACING`` / ``KGAMMA``.
    """
    nsw = int(incar.get("NSW", 0))
    if nsw > 1:
        raise ValueError(f"fp_incar {path}: NSW = {nsw} asks for {nsw} ionic steps; an fp task labels one "
                         "frame: set NSW = 0 (or remove it)")
    if int(incar.get("ISIF", 2)) == 0:
        raise ValueError(f"fp_incar {path}: ISIF = 0 computes no stress, so no virial; remove ISIF or set ISIF = 2")
    if int(incar.get("IBRION", -1)) in (5, 6, 7, 8):
        raise ValueError(f"fp_incar {path}: IBRION = {incar['IBRION']} is a phonon run; use IBRION = -1 (or remove it)")
    if aniso_kspacing is None:
        missing = [k for k in ("KSPACING", "KGAMMA") if k not in incar]
        if missing:
            raise ValueError(f"fp_incar {path}: {' and '.join(missing)} not set; without a KPOINTS file VASP "
                             "needs them: add e.g. 'KSPACING = 0.2' and 'KGAMMA = .TRUE.' (or give "
                             "fp_aniso_kspacing)")
        if not float(incar["KSPACING"]) > 0:
            raise ValueError(f"fp_incar {path}: KSPACING = {incar['KSPACING']} must be > 0 (1/Å)")


def load_outcar(path: Path, task_dir: Path | None = None, type_map: list[str] | None = None) -> dpdata.LabeledSystem:
    """Every ionic step of an OUTCAR, all electronically converged, as a labelled system.

    Returns
    -------
    dpdata.LabeledSystem
        n frames: energies (n,) eV (free energy TOTEN), forces (n, atoms, 3) eV/Å,
        virials (n, 3, 3) eV when the stress was computed.

    Raises
    ------
    FpTaskFailed
        naming ``task_dir`` (or the file): missing file, no energy (crashed run), an ionic
        step whose SCF used all NELM iterations, or an unreadable file.
    """
    where = task_dir if task_dir is not None else path
    if not Path(path).is_file():
        raise FpTaskFailed(f"{where}: no {Path(path).name} (VASP did not run or crashed; see fp.err)")
    text = Path(path).read_text(errors="replace")
    if "free  energy   TOTEN" not in text:
        raise FpTaskFailed(f"{where}: {Path(path).name} holds no energy (VASP crashed or was killed; see fp.err)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            every = dpdata.LabeledSystem(str(path), fmt="vasp/outcar", convergence_check=False, type_map=type_map)
            converged = dpdata.LabeledSystem(str(path), fmt="vasp/outcar", type_map=type_map)
    except Exception as err:
        raise FpTaskFailed(f"{where}: {Path(path).name} unreadable ({type(err).__name__}: {err})") from err
    if converged.get_nframes() < every.get_nframes():
        m = re.search(r"NELM\s*=\s*(\d+)", text)
        nelm = m.group(1) if m else "?"
        raise FpTaskFailed(f"{where}: electronic SCF not converged (all NELM = {nelm} steps used) in "
                           f"{every.get_nframes() - converged.get_nframes()} of {every.get_nframes()} ionic step(s)")
    return converged


@register
class VaspStyle(PseudoStyle):
    """Label with VASP: POSCAR / INCAR / POTCAR (+ KPOINTS) in, OUTCAR out."""

    name = "vasp"
    output_files = [OUTCAR]

    @classmethod
    def args(cls) -> list[Argument]:
        """``fp_pp_path``, ``fp_pp_files`` (POTCARs), ``fp_incar``, ``fp_aniso_kspacing``, ``cvasp``."""
        return [
            *pseudo_args("POTCAR"),
            arg("fp_incar", str, "INCAR file (one ionic step; KSPACING and KGAMMA unless fp_aniso_kspacing)", default=None),
            arg("fp_aniso_kspacing", list, "three k-spacings, 1/Å (2π included); writes KPOINTS", default=None),
            arg("cvasp", bool, "DP-GEN's Custodian switch: accepted, not used", default=False),
        ]
    pp_what = "POTCAR"

    def _incar_path(self) -> Path:
        if not self.param.get("fp_incar"):
            raise ValueError("fp_incar is missing: fp_style 'vasp' needs an INCAR file (one SCF, NSW = 0, "
                             "KSPACING and KGAMMA set)")
        return self.base_dir / self.param["fp_incar"]

    def check(self) -> None:
        """Check POTCARs (exist, element = type_map element at the same place) and the INCAR.

        Raises
        ------
        ValueError
            naming the key, the file, the element and the fix.
        """
        self.check_pp_files(potcar_element)
        aniso = self.param.get("fp_aniso_kspacing")
        if aniso is not None and (len(aniso) != 3 or not all(isinstance(k, (int, float)) and k > 0 for k in aniso)):
            raise ValueError(f"fp_aniso_kspacing = {aniso}: need three positive spacings (1/Å), one per cell vector")
        path = self._incar_path()
        check_incar(read_incar(path), path, aniso)
        if self.param.get("cvasp"):
            log.warning("cvasp = true: Custodian is not used; failed VASP tasks are reported instead")

    def write_frame(self, frame: dpdata.System, present: list[str], task_dir: Path) -> list[str]:
        """POSCAR, INCAR, POTCAR (and KPOINTS with ``fp_aniso_kspacing``)."""
        frame.to("vasp/poscar", str(task_dir / "POSCAR"))
        potcars = self.pp_files()
        (task_dir / "POTCAR").write_text("".join(_with_newline(potcars[el].read_text()) for el in present))
        incar = read_incar(self._incar_path())
        files = ["POSCAR", "INCAR", "POTCAR"]
        aniso = self.param.get("fp_aniso_kspacing")
        if aniso is not None:
            incar.pop("KSPACING", None)
            gamma = bool(incar.get("KGAMMA", True))
            mesh = kspacing_mesh(frame["cells"][0], aniso)
            (task_dir / "KPOINTS").write_text(
                f"Automatic mesh from fp_aniso_kspacing = {aniso}\n0\n{'Gamma' if gamma else 'Monkhorst-Pack'}\n"
                f"{mesh[0]} {mesh[1]} {mesh[2]}\n0 0 0\n")
            files.append("KPOINTS")
        incar.write_file(task_dir / "INCAR")
        return files

    def default_command(self) -> str:
        """``vasp_std`` (machine.json's fp command usually adds ``mpirun``)."""
        return "vasp_std"

    def read_label(self, task_dir: Path) -> dpdata.LabeledSystem:
        """The labelled frame of ``task_dir/OUTCAR`` (energies eV, forces eV/Å, virials eV).

        Raises
        ------
        FpTaskFailed
            missing / crashed / unconverged OUTCAR, several ionic steps, no stress, non-finite
            numbers, or atoms that differ from the task's POSCAR.
        """
        task_dir = Path(task_dir)
        system = checked_label(load_outcar(task_dir / OUTCAR, task_dir, self.type_map), task_dir)
        poscar = task_dir / "POSCAR"
        if poscar.is_file():
            ref = dpdata.System(str(poscar), fmt="vasp/poscar", type_map=self.type_map)
            if list(ref["atom_numbs"]) != list(system["atom_numbs"]):
                raise FpTaskFailed(f"{task_dir}: OUTCAR has {dict(zip(system['atom_names'], system['atom_numbs']))} "
                                   f"atoms, POSCAR {dict(zip(ref['atom_names'], ref['atom_numbs']))}: the POTCAR "
                                   "does not match the POSCAR")
        return system


def _with_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"
