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

``dpgen init_bulk`` (DP-GEN's stages 1 and 3): :meth:`VaspStyle.write_relax_inputs` and
:meth:`VaspStyle.write_md_inputs` write DP-GEN's relaxation and AIMD tasks from ``relax_incar`` /
``md_incar`` and ``potcars``; :meth:`VaspStyle.read_relaxed` reads CONTCAR and
:meth:`VaspStyle.read_md` the AIMD's OUTCAR with DP-GEN's rule (``md_nstep`` ionic steps).
"""

from __future__ import annotations

import logging
import re
import shutil
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

    # -- init_bulk (DP-GEN's stages 1 and 3): relaxation and AIMD ----------------------
    #
    # As DP-GEN: INCAR = relax_incar / md_incar as given (the AIMD one gets NSW = md_nstep
    # when it sets no NSW; an NSW it sets wins over md_nstep, with a warning), POSCAR in
    # the frame's element order, POTCAR = DP-GEN's ``potcars`` (one per ``elements``
    # entry) concatenated in that order, elements absent from the frame left out.

    def init_potcars(self) -> dict[str, Path]:
        """One POTCAR per element: DP-GEN's ``potcars`` (paths relative to the run folder, in
        ``elements`` order) or, without it, ``fp_pp_path`` / ``fp_pp_files``.

        Raises
        ------
        ValueError
            missing key, wrong count, missing file, or a POTCAR made for another element.
        """
        potcars = self.param.get("potcars")
        if potcars is None:
            if self.param.get("fp_pp_files") is None:
                raise ValueError(f"potcars is missing: VASP relaxation / AIMD need one POTCAR per element of "
                                 f"elements = {self.param.get('elements')}, in that order")
            return self.check_pp_files(potcar_element)
        elements = list(self.param.get("elements") or [])
        if not isinstance(potcars, list) or len(potcars) != len(elements):
            raise ValueError(f"potcars = {potcars}: give one POTCAR per entry of elements = {elements}, in that order")
        out = {}
        for i, (el, name) in enumerate(zip(elements, potcars)):
            path = Path(name) if Path(name).is_absolute() else self.base_dir / name
            if not path.is_file():
                raise ValueError(f"potcars[{i}] = {name!r} (the POTCAR for {el}): no such file {path}")
            try:
                found = potcar_element(path)
            except ValueError as err:
                raise ValueError(f"potcars[{i}] = {name!r}: {err}") from None
            if found is not None and found != el:
                raise ValueError(f"potcars[{i}] = {name!r} is a POTCAR for {found}, but elements[{i}] = {el!r}; "
                                 "list the POTCARs in the order of elements")
            out[el] = path
        return out

    def init_incar(self, key: str) -> tuple[Path, Incar]:
        """The INCAR named by ``relax_incar`` / ``md_incar``: its path and pymatgen's reading.

        Raises
        ------
        ValueError
            key unset, file missing or unreadable.
        """
        value = self.param.get(key)
        if not value:
            stage = "1 (relaxation)" if key == "relax_incar" else "3 (AIMD)"
            raise ValueError(f"{key} is missing: stage {stage} with VASP needs an INCAR file")
        path = Path(value) if Path(value).is_absolute() else self.base_dir / value
        if not path.is_file():
            raise ValueError(f"{key} = {value!r}: no such file {path}")
        try:
            return path, read_incar(path)
        except ValueError as err:
            raise ValueError(str(err).replace("fp_incar", key, 1)) from None

    def md_steps(self) -> int:
        """Ionic steps of stage 3: ``NSW`` of ``md_incar`` when set (it wins over ``md_nstep``,
        with a warning, as in DP-GEN), else ``md_nstep``.

        Raises
        ------
        ValueError
            when neither is set.
        """
        _, incar = self.init_incar("md_incar")
        nstep = self.param.get("md_nstep")
        if "NSW" in incar:
            nsw = int(incar["NSW"])
            if nstep is not None and nsw != nstep:
                log.warning("md_incar sets NSW = %d but md_nstep = %d: %d steps are run and expected "
                            "(DP-GEN follows NSW likewise)", nsw, nstep, nsw)
            return nsw
        if nstep is None:
            raise ValueError("md_nstep is missing (and md_incar sets no NSW): stage 3 needs the number of MD steps")
        return int(nstep)

    def check_init_stages(self, stages: list[int]) -> None:
        """Validate the keys of init_bulk's relaxation (1) and AIMD (3) stages among ``stages``.

        Raises
        ------
        ValueError
            naming the key, the file, the value and the fix.
        """
        self.init_potcars()
        if 1 in stages:
            path, incar = self.init_incar("relax_incar")
            nsw = int(incar.get("NSW", 0))
            ibrion = int(incar.get("IBRION", 0 if nsw > 0 else -1))
            if nsw < 1:
                raise ValueError(f"relax_incar {path}: NSW = {nsw} runs no ionic step, so nothing is relaxed: set "
                                 "NSW (e.g. 100) with IBRION = 2 (ISIF = 3 relaxes the cell too), or set "
                                 "skip_relax: true and drop 1 from stages")
            if ibrion not in (1, 2, 3):
                raise ValueError(f"relax_incar {path}: IBRION = {ibrion} is no relaxation; allowed 1, 2 or 3")
        if 3 in stages:
            path, incar = self.init_incar("md_incar")
            steps = self.md_steps()
            if steps < 0:
                raise ValueError(f"md_nstep = {steps}: must be >= 0 (0: one single-point step)")
            ibrion = int(incar.get("IBRION", 0 if steps > 0 else -1))
            if steps > 0 and ibrion != 0:
                raise ValueError(f"md_incar {path}: IBRION = {ibrion} is no molecular dynamics: stage 3 runs AIMD "
                                 "with IBRION = 0 (and POTIM, TEBEG, SMASS or MDALGO)")
            if self.param.get("reuse_relax_chgcar") and int(incar.get("ICHARG", 2)) != 1:
                log.warning("reuse_relax_chgcar = true but md_incar %s sets ICHARG = %s: VASP reads the CHGCAR "
                            "only with ICHARG = 1", path, incar.get("ICHARG", "2 (default)"))

    def _write_stage(self, frame: dpdata.System, task_dir: Path, incar_text: str) -> list[str]:
        task_dir = Path(task_dir)
        task_dir.mkdir(parents=True, exist_ok=True)
        frame = frame.copy()
        present = [n for n, c in zip(frame["atom_names"], frame["atom_numbs"]) if c > 0]
        frame = frame.remove_atom_names([n for n in frame["atom_names"] if n not in present]) \
            if len(present) < len(frame["atom_names"]) else frame
        frame.sort_atom_types()
        frame.to("vasp/poscar", str(task_dir / "POSCAR"))
        potcars = self.init_potcars()
        missing = [el for el in present if el not in potcars]
        if missing:
            raise ValueError(f"the structure holds {missing}, which have no POTCAR in potcars / fp_pp_files")
        (task_dir / "POTCAR").write_text("".join(_with_newline(potcars[el].read_text()) for el in present))
        (task_dir / "INCAR").write_text(incar_text)
        return ["POSCAR", "INCAR", "POTCAR"]

    def write_relax_inputs(self, frame: dpdata.System, task_dir: Path, relax_dir: Path | None = None) -> list[str]:
        """POSCAR, INCAR (``relax_incar`` verbatim) and POTCAR of a stage-1 relaxation of ``frame``."""
        path, _ = self.init_incar("relax_incar")
        return self._write_stage(frame, task_dir, path.read_text())

    def write_md_inputs(self, frame: dpdata.System, task_dir: Path, relax_dir: Path | None = None) -> list[str]:
        """POSCAR, INCAR (``md_incar``, plus ``NSW = md_nstep`` when it sets none) and POTCAR of a
        stage-3 AIMD from ``frame``; with ``reuse_relax_chgcar``, a copy of ``relax_dir/CHGCAR``.

        Raises
        ------
        ValueError
            with ``reuse_relax_chgcar``, when the relaxation left no CHGCAR.
        """
        path, incar = self.init_incar("md_incar")
        text = _with_newline(path.read_text())
        if "NSW" not in incar:
            text += f"NSW = {self.md_steps()}\n"
        files = self._write_stage(frame, task_dir, text)
        if self.param.get("reuse_relax_chgcar"):
            chgcar = Path(relax_dir or "") / "CHGCAR"
            if not chgcar.is_file():
                raise ValueError(f"reuse_relax_chgcar = true: {chgcar} not found; the stage-1 relaxation must "
                                 "write a CHGCAR (LCHARG = .TRUE.)")
            shutil.copyfile(chgcar, Path(task_dir) / "CHGCAR")
            files.append("CHGCAR")
        return files

    def relax_backward_files(self) -> list[str]:
        """Files a finished relaxation brings back (DP-GEN's)."""
        return ["OUTCAR", "CONTCAR"] + (["CHGCAR"] if self.param.get("reuse_relax_chgcar") else [])

    def md_backward_files(self) -> list[str]:
        """Files a finished AIMD brings back (DP-GEN's)."""
        return ["OUTCAR"]

    def read_relaxed(self, task_dir: Path) -> dpdata.System:
        """The relaxed structure: ``CONTCAR`` (as DP-GEN, converged or not).

        Raises
        ------
        FpTaskFailed
            when CONTCAR is missing, empty or unreadable.
        """
        contcar = Path(task_dir) / "CONTCAR"
        if not contcar.is_file() or not contcar.read_text().strip():
            raise FpTaskFailed(f"{task_dir}: no CONTCAR (VASP did not run or crashed; see fp.log / fp.err)")
        try:
            return dpdata.System(str(contcar), fmt="vasp/poscar", type_map=self.type_map)
        except Exception as err:
            raise FpTaskFailed(f"{task_dir}: CONTCAR unreadable ({type(err).__name__}: {err})") from err

    def read_md(self, task_dir: Path, nsteps: int) -> dpdata.LabeledSystem:
        """The frames of a finished AIMD's OUTCAR, DP-GEN's rule: the OUTCAR must hold ``nsteps``
        ionic steps (``TOTAL-FORCE`` blocks; one when ``nsteps`` is 0); steps whose SCF did not
        converge are left out by dpdata, with a warning.

        Raises
        ------
        FpTaskFailed
            missing OUTCAR, another number of ionic steps, no converged step, unreadable file.
        """
        outcar = Path(task_dir) / OUTCAR
        if not outcar.is_file():
            raise FpTaskFailed(f"{task_dir}: no OUTCAR (VASP did not run or crashed; see fp.log / fp.err)")
        nforce = outcar.read_text(errors="replace").count("TOTAL-FORCE")
        if not (nforce == nsteps or (nsteps == 0 and nforce == 1)):
            raise FpTaskFailed(f"{task_dir}: OUTCAR holds {nforce} ionic steps, md_nstep (NSW) = {nsteps}: "
                               "the AIMD did not run to its end")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                system = dpdata.LabeledSystem(str(outcar), fmt="vasp/outcar", type_map=self.type_map)
        except Exception as err:
            raise FpTaskFailed(f"{task_dir}: OUTCAR unreadable ({type(err).__name__}: {err})") from err
        for w in caught:
            log.warning("%s: %s", task_dir, w.message)
        if system.get_nframes() == 0:
            raise FpTaskFailed(f"{task_dir}: the SCF converged at none of the {nforce} ionic steps")
        return system


def _with_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"
