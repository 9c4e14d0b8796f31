"""fp style ``pwscf``: label frames with Quantum ESPRESSO's pw.x (DP-GEN's keys).

``param.json``::

    "fp_style": "pwscf",
    "fp_pp_path": "pp",
    "fp_pp_files": ["Al.pbe-n-nc.UPF", "Cu.pbe-dn-rrkjus.UPF"],    # type_map order, or {element: file}
    "fp_params": {"ecut": 60, "ediff": 1e-8, "smearing": "mv", "sigma": 0.02, "kspacing": 0.25}

or, as in DP-GEN, namelists given verbatim (then ``fp_params`` is ignored)::

    "user_fp_params": {"control": {...}, "system": {"ecutwfc": 60, ...}, "electrons": {...},
                       "kspacing": 0.25}

``fp_params`` units are pw.x's: ``ecut`` -> ``ecutwfc`` (Ry), ``ediff`` -> ``conv_thr`` (Ry),
``smearing`` -> ``smearing`` with ``occupations = 'smearing'``, ``sigma`` -> ``degauss`` (Ry);
``kspacing`` (1/Å, 2π included, VASP's definition, one number or three) gives the
Monkhorst-Pack mesh of each frame.  Unlike DP-GEN, no Tkatchenko-Scheffler van der Waals
correction is added behind the user's back: put ``"vdw_corr": "TS"`` in
``user_fp_params.system`` to get it.

The task folder gets ``input`` (written by ASE's espresso-in writer: ``ibrav = 0``,
``CELL_PARAMETERS angstrom``, ``ATOMIC_POSITIONS angstrom``, atoms grouped in ``type_map``
order, ``mass_map`` masses) with links to the pseudopotentials; enforced: ``calculation
'scf'``, ``tprnfor``, ``tstress``, ``pseudo_dir './'``.  The command (default
``pw.x -in input > output``; a machine.json command must also leave pw.x's output in
``output``) is read by dpdata's ``qe/pw/scf`` from ``[input, output]`` (energy Ry -> eV,
forces Ry/Bohr -> eV/Å, virial eV from the stress in kbar times the volume).  A task is
failed when ``output`` is missing, pw.x says "convergence NOT achieved", or no SCF
converged ("convergence has been achieved" missing: crash or time limit).
"""

from __future__ import annotations

import os
from pathlib import Path

import ase.io
import dpdata
import numpy as np

from dargs import Argument

from ..params import arg
from .base import FpTaskFailed, pseudo_args, register
from .pseudo import PseudoStyle, kspacing_mesh, read_labeled, type_masses, upf_element

INPUT = "input"
OUTPUT = "output"
FP_PARAMS_KEYS = ("ecut", "ediff", "smearing", "sigma", "kspacing")
NAMELISTS = ("control", "system", "electrons")
SCF_OK = "convergence has been achieved"
SCF_FAILED = "convergence NOT achieved"


def _kspacing_ok(value) -> bool:
    values = value if isinstance(value, (list, tuple)) else [value]
    return len(values) in (1, 3) and all(isinstance(v, (int, float)) and v > 0 for v in values)


@register
class PwscfStyle(PseudoStyle):
    """Label with pw.x: ``input`` in, ``output`` out."""

    name = "pwscf"
    output_files = [OUTPUT]

    @classmethod
    def args(cls) -> list[Argument]:
        """``fp_pp_path``, ``fp_pp_files`` (UPF), ``fp_params`` or ``user_fp_params``."""
        return [
            *pseudo_args("UPF"),
            arg("fp_params", dict, "ecut (Ry), ediff (Ry), smearing, sigma (Ry), kspacing (1/Bohr)", default=None),
            arg("user_fp_params", dict, "pw.x namelists verbatim, plus kspacing", default=None),
        ]

    def _namelists(self) -> tuple[dict[str, dict], object]:
        """pw.x namelists and the k-spacing, from user_fp_params or fp_params (enforced keys applied)."""
        user = self.param.get("user_fp_params")
        if user:
            lists = {name: dict(user.get(name) or {}) for name in NAMELISTS}
            kspacing = user.get("kspacing")
        else:
            fp = self.param.get("fp_params") or {}
            lists = {
                "control": {},
                "system": {"ecutwfc": fp["ecut"], "occupations": "smearing", "smearing": fp["smearing"],
                           "degauss": fp["sigma"]},
                "electrons": {"conv_thr": fp["ediff"]},
            }
            kspacing = fp["kspacing"]
        lists["control"].update(calculation="scf", tprnfor=True, tstress=True, pseudo_dir="./")
        lists["control"].setdefault("outdir", "./OUT")
        for key in ("ibrav", "nat", "ntyp", "celldm(1)", "a"):
            lists["system"].pop(key, None)
        return lists, kspacing

    def check(self) -> None:
        """Check the pseudopotentials (exist, made for the element) and fp_params / user_fp_params.

        Raises
        ------
        ValueError
            naming the key, the value or file, and the fix.
        """
        self.check_pp_files(upf_element)
        user = self.param.get("user_fp_params")
        if user:
            unknown = [k for k in user if k not in (*NAMELISTS, "kspacing")]
            if unknown:
                raise ValueError(f"user_fp_params keys {unknown}: allowed {', '.join(NAMELISTS)}, kspacing "
                                 "(namelists as dicts of pw.x keywords)")
            if not _kspacing_ok(user.get("kspacing")):
                raise ValueError(f"user_fp_params.kspacing = {user.get('kspacing')!r}: needed, one or three "
                                 "positive spacings (1/Å, 2π included) giving each frame's k-point mesh")
            calc = str((user.get("control") or {}).get("calculation", "scf")).lower()
            if calc != "scf":
                raise ValueError(f"user_fp_params.control.calculation = {calc!r}: an fp task labels one frame; "
                                 "use 'scf' (or remove it)")
        else:
            fp = self.param.get("fp_params") or {}
            missing = [k for k in FP_PARAMS_KEYS if k not in fp]
            unknown = [k for k in fp if k not in FP_PARAMS_KEYS]
            if missing or unknown:
                raise ValueError(f"fp_params = {fp}: " + (f"missing {missing}" if missing else "") +
                                 ("; " if missing and unknown else "") + (f"unknown {unknown}" if unknown else "") +
                                 f"; fp_style 'pwscf' needs {', '.join(FP_PARAMS_KEYS)} (ecut, ediff, sigma in Ry, "
                                 "kspacing in 1/Å), or user_fp_params")
            if not _kspacing_ok(fp["kspacing"]):
                raise ValueError(f"fp_params.kspacing = {fp['kspacing']!r}: one or three positive spacings (1/Å)")

    def write_frame(self, frame: dpdata.System, present: list[str], task_dir: Path) -> list[str]:
        """``input`` and links to the pseudopotentials."""
        order = np.argsort(frame["atom_types"], kind="stable")  # atoms grouped in type_map order
        atoms = frame.to("ase/structure")[0][order]
        masses = dict(zip(self.type_map, type_masses(self.param)))
        atoms.set_masses([masses[s] for s in atoms.get_chemical_symbols()])
        pps = self.pp_files()
        for el in present:
            link = task_dir / pps[el].name
            if not link.exists():
                os.symlink(pps[el], link)
        lists, kspacing = self._namelists()
        ase.io.write(task_dir / INPUT, atoms, format="espresso-in", input_data=lists,
                     pseudopotentials={el: pps[el].name for el in present},
                     kpts=kspacing_mesh(frame["cells"][0], kspacing))
        return [INPUT] + [pps[el].name for el in present]

    def default_command(self) -> str:
        """``pw.x -in input > output``."""
        return f"pw.x -in {INPUT} > {OUTPUT}"

    def read_label(self, task_dir: Path) -> dpdata.LabeledSystem:
        """The labelled frame of ``task_dir/{input, output}``.

        Returns one frame: energies eV, forces ``(1, n, 3)`` eV/Å, virials ``(1, 3, 3)`` eV.

        Raises
        ------
        FpTaskFailed
            missing input / output, unconverged or unfinished SCF, no forces or stress,
            non-finite numbers.
        """
        task_dir = Path(task_dir)
        inp, out = task_dir / INPUT, task_dir / OUTPUT
        for path in (inp, out):
            if not path.is_file():
                raise FpTaskFailed(f"{task_dir}: no {path.name} (pw.x did not run; see fp.err)")
        text = out.read_text(errors="replace")
        if SCF_FAILED in text:
            raise FpTaskFailed(f"{task_dir}: electronic SCF not converged (\"{SCF_FAILED}\" in {OUTPUT})")
        if SCF_OK not in text:
            raise FpTaskFailed(f"{task_dir}: no converged SCF in {OUTPUT} (pw.x crashed or was stopped; see fp.err)")
        return read_labeled(task_dir, [str(inp), str(out)], "qe/pw/scf", self.type_map)
