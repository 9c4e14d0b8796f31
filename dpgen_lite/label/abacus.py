"""fp style ``abacus``: label frames with ABACUS (DP-GEN's keys).

``param.json``::

    "fp_style": "abacus",
    "fp_pp_path": "pp",                               # pseudopotentials (and orbitals)
    "fp_pp_files": ["Al_ONCV_PBE-1.0.upf", "Cu_ONCV_PBE-1.0.upf"],   # type_map order, or {element: file}
    "fp_orb_files": [...],                            # LCAO basis only (basis_type lcao), same order
    "fp_dpks_descriptor": "jle.orb",                  # optional, DeePKS
    "fp_incar": "INPUT",                              # an ABACUS INPUT file, and/or
    "user_fp_params": {"ecutwfc": 80, "scf_thr": 1e-7, "kspacing": 0.1},   # INPUT keys (win over fp_incar)
    "k_points": [4, 4, 4, 0, 0, 0]                    # or "fp_kpt_file": "KPT"

Each task folder gets ``INPUT`` (the keys above, with what the label needs enforced:
``calculation scf``, ``cal_force 1``, ``cal_stress 1``, ``suffix ABACUS``, ``pseudo_dir`` /
``orbital_dir`` ``./``, ``ntype`` = elements in the frame; ``stru_file`` / ``kpoint_file`` dropped),
``STRU`` (dpdata's ``abacus/stru``: Å converted to Bohr, atoms grouped in ``type_map`` order,
absent elements left out, ``mass_map`` masses) with symbolic links to the pseudopotential and
orbital files, and ``KPT`` unless INPUT sets ``kspacing`` or ``gamma_only 1``.  ABACUS writes
``OUT.ABACUS/running_scf.log``, read by dpdata's ``abacus/scf`` (energy eV, forces eV/Å,
virial eV from the stress in kbar times the volume).

:meth:`AbacusStyle.read_label` works on any folder laid out as ABACUS writes it
(``INPUT`` naming ``suffix`` and ``stru_file``, ``OUT.<suffix>/running_scf.log``).
A task is failed when the log is missing, says "convergence has NOT been achieved", or holds
no final energy, forces or stress.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dpdata

from dargs import Argument

from ..params import arg
from .base import FpTaskFailed, pseudo_args, register
from .pseudo import (
    PseudoStyle, check_file_elements, orb_element, pp_path, read_labeled, resolve_files, type_masses, upf_element,
)

SUFFIX = "ABACUS"
LOG = f"OUT.{SUFFIX}/running_scf.log"
#: keys set by the style, whatever fp_incar / user_fp_params say
ENFORCED = {"calculation": "scf", "cal_force": "1", "cal_stress": "1", "suffix": SUFFIX, "pseudo_dir": "./"}
#: keys removed: the task folder uses ABACUS's default names STRU and KPT
DROPPED = ("stru_file", "kpoint_file", "orbital_dir", "read_file_dir")
SCF_FAILED = ("convergence has NOT been achieved", "convergence has not been achieved")


def read_input(path: Path) -> dict[str, str]:
    """Keys of an ABACUS ``INPUT`` file: ``{key (lower case): value text}``, comments dropped.

    Raises
    ------
    ValueError
        if the file does not exist.
    """
    if not Path(path).is_file():
        raise ValueError(f"{path}: no such ABACUS INPUT file")
    out = {}
    for line in Path(path).read_text().splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0].upper() == "INPUT_PARAMETERS":
            continue
        out[words[0].lower()] = " ".join(words[1:])
    return out


def _text(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (list, tuple)):
        return " ".join(_text(v) for v in value)
    return str(value)


@register
class AbacusStyle(PseudoStyle):
    """Label with ABACUS (plane waves or LCAO): INPUT / STRU / KPT in, running_scf.log out."""

    name = "abacus"
    output_files = [LOG]

    @classmethod
    def args(cls) -> list[Argument]:
        """DP-GEN's ABACUS keys: pseudopotentials, orbitals, INPUT, k-points, DeePKS descriptor."""
        return [
            *pseudo_args(),
            arg("fp_orb_files", [list, dict], "LCAO orbital files in type_map order, or {element: file}",
                default=None),
            arg("fp_dpks_descriptor", str, "DeePKS descriptor file (in fp_pp_path)", default=None),
            arg("fp_incar", str, "INPUT file", default=None),
            arg("user_fp_params", dict, "INPUT keys (win over fp_incar)", default=None),
            arg("fp_kpt_file", str, "KPT file", default=None),
            arg("k_points", list, "Monkhorst-Pack mesh and shift, e.g. [4, 4, 4, 0, 0, 0]", default=None),
        ]

    def _input(self) -> dict[str, str]:
        """fp_incar's keys overlaid by user_fp_params (values as text)."""
        keys = {}
        if self.param.get("fp_incar"):
            keys.update(read_input(self.base_dir / self.param["fp_incar"]))
        for key, value in (self.param.get("user_fp_params") or {}).items():
            keys[key.lower()] = _text(value)
        return keys

    def _kpt_source(self, keys: dict[str, str]) -> str:
        if "kspacing" in keys or keys.get("gamma_only", "0").strip() in ("1", "true", ".true."):
            return "input"
        if self.param.get("k_points") is not None:
            return "k_points"
        if self.param.get("fp_kpt_file"):
            return "fp_kpt_file"
        return ""

    def check(self) -> None:
        """Check pseudopotential / orbital files (exist, made for the element), INPUT and k-points.

        Raises
        ------
        ValueError
            naming the key, the file or value, and the fix.
        """
        self.check_pp_files(upf_element)
        if not (self.param.get("fp_incar") or self.param.get("user_fp_params")):
            raise ValueError("fp_style 'abacus' needs INPUT keys: give fp_incar (an INPUT file) or user_fp_params "
                             "(e.g. {\"ecutwfc\": 80, \"scf_thr\": 1e-7, \"kspacing\": 0.1})")
        keys = self._input()
        calc = keys.get("calculation", "scf").lower()
        if calc != "scf":
            raise ValueError(f"calculation = {calc!r} in the ABACUS input: an fp task labels one frame; "
                             "set calculation scf (or remove it)")
        orbs = resolve_files(self.param, self.base_dir, "fp_orb_files", required=False, what="orbital")
        if keys.get("basis_type", "pw").lower().startswith("lcao") and orbs is None:
            raise ValueError(f"basis_type = {keys['basis_type']!r} needs fp_orb_files: one numerical orbital "
                             "file per type_map element, in fp_pp_path")
        if orbs is not None:
            check_file_elements(orbs, orb_element, self.param, key="fp_orb_files", what="orbital")
        if self.param.get("fp_dpks_descriptor") and not (pp_path(self.param, self.base_dir)
                                                         / self.param["fp_dpks_descriptor"]).is_file():
            raise ValueError(f"fp_dpks_descriptor = {self.param['fp_dpks_descriptor']!r}: no such file in fp_pp_path")
        source = self._kpt_source(keys)
        if source == "k_points":
            kp = self.param["k_points"]
            if len(kp) not in (3, 6) or not all(isinstance(k, int) for k in kp[:3]) or min(kp[:3]) < 1:
                raise ValueError(f"k_points = {kp}: need a Monkhorst-Pack mesh of three positive integers "
                                 "and optionally three shifts, e.g. [4, 4, 4, 0, 0, 0]")
        elif source == "fp_kpt_file" and not (self.base_dir / self.param["fp_kpt_file"]).is_file():
            raise ValueError(f"fp_kpt_file = {self.param['fp_kpt_file']!r}: no such file under {self.base_dir}")
        elif not source:
            raise ValueError("no k-points for ABACUS: set kspacing (or gamma_only 1) in the INPUT keys, "
                             "or give k_points (e.g. [4, 4, 4, 0, 0, 0]) or fp_kpt_file")

    def write_frame(self, frame: dpdata.System, present: list[str], task_dir: Path) -> list[str]:
        """INPUT, STRU (+ links to the pseudopotential / orbital files) and KPT."""
        pps = self.pp_files()
        orbs = resolve_files(self.param, self.base_dir, "fp_orb_files", required=False, what="orbital")
        extra = {}
        if orbs is not None:
            extra["numerical_orbital"] = {el: str(p) for el, p in orbs.items()}
        if self.param.get("fp_dpks_descriptor"):
            extra["numerical_descriptor"] = str(pp_path(self.param, self.base_dir) / self.param["fp_dpks_descriptor"])
        frame.to("abacus/stru", str(task_dir / "STRU"), pp_file={el: str(p) for el, p in pps.items()},
                 mass=type_masses(self.param), link_file=True, **extra)
        files = ["INPUT", "STRU"] + [pps[el].name for el in present]
        files += [orbs[el].name for el in present] if orbs is not None else []
        if "numerical_descriptor" in extra:
            files.append(Path(extra["numerical_descriptor"]).name)

        keys = {k: v for k, v in self._input().items() if k not in DROPPED}
        keys.update(ENFORCED, ntype=str(len(present)))
        if orbs is not None:
            keys["orbital_dir"] = "./"
        (task_dir / "INPUT").write_text("INPUT_PARAMETERS\n" + "".join(f"{k:<24s} {v}\n" for k, v in keys.items()))
        source = self._kpt_source(keys)
        if source == "k_points":
            kp = list(self.param["k_points"]) + [0, 0, 0][len(self.param["k_points"]) - 3:]
            (task_dir / "KPT").write_text("K_POINTS\n0\nGamma\n" + " ".join(str(k) for k in kp) + "\n")
        elif source == "fp_kpt_file":
            shutil.copyfile(self.base_dir / self.param["fp_kpt_file"], task_dir / "KPT")
        if source != "input":
            files.append("KPT")
        return files

    def default_command(self) -> str:
        """``abacus`` (machine.json's fp command usually adds ``mpirun``)."""
        return "abacus"

    def read_label(self, task_dir: Path) -> dpdata.LabeledSystem:
        """The labelled frame of an ABACUS scf folder (INPUT, STRU, OUT.<suffix>/running_scf.log).

        Returns one frame: energies eV, forces ``(1, n, 3)`` eV/Å, virials ``(1, 3, 3)`` eV.

        Raises
        ------
        FpTaskFailed
            no INPUT or log (crash), "convergence has NOT been achieved", no final energy,
            no stress, or non-finite numbers.
        """
        task_dir = Path(task_dir)
        try:
            suffix = read_input(task_dir / "INPUT").get("suffix", SUFFIX)
        except ValueError:
            raise FpTaskFailed(f"{task_dir}: no INPUT file") from None
        log = task_dir / f"OUT.{suffix}" / "running_scf.log"
        if not log.is_file():
            raise FpTaskFailed(f"{task_dir}: no {log.relative_to(task_dir)} "
                               "(ABACUS did not run or crashed; see fp.err)")
        text = log.read_text(errors="replace")
        if any(marker in text for marker in SCF_FAILED):
            nmax = read_input(task_dir / "INPUT").get("scf_nmax", "?")
            raise FpTaskFailed(f"{task_dir}: electronic SCF not converged (\"convergence has NOT been achieved\" "
                               f"in {log.relative_to(task_dir)}, scf_nmax = {nmax})")
        system = read_labeled(task_dir, str(task_dir), "abacus/scf", self.type_map)
        if system["forces"].size == 0:
            raise FpTaskFailed(f"{task_dir}: no forces in {log.relative_to(task_dir)} (cal_force 1)")
        return system
