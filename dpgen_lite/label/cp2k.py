"""fp style ``cp2k``: label frames with CP2K (Quickstep, GTH pseudopotentials, MOLOPT basis sets).

``param.json`` keys read by this style (besides ``type_map``)::

    "fp_style": "cp2k",
    "fp_params": {"cutoff": 300, "kpoints": [3, 3, 3]},
    "user_fp_params": {"FORCE_EVAL": {"DFT": {"SCF": {"MIXING": {"ALPHA": 0.2}}}}},
    "fp_template": "cp2k_template.inp"      # or DP-GEN's "external_input_path"

``fp_params`` keys, all optional (default in brackets):

- ``cutoff`` [400] Ry, ``DFT/MGRID/CUTOFF``; ``rel_cutoff`` [50] Ry, ``REL_CUTOFF``
- ``kpoints`` [null = Gamma only] three ints, a Monkhorst-Pack mesh; ``[1, 1, 1]`` = Gamma only
- ``smearing_temperature`` [1000] K, Fermi-Dirac (metals: a 4-atom Al cell at the Gamma point
  does not converge in 100 steps without it); ``0`` or ``null`` = no smearing
- ``xc`` ["PBE"] an ``XC_FUNCTIONAL`` shortcut (:data:`XC_SHORTCUTS`)
- ``basis_set`` ["DZVP-MOLOPT-SR-GTH"] one name, or ``{"Al": ..., "Mg": ...}``
- ``potential`` ["GTH-PBE"; GTH-PADE / GTH-BLYP / GTH-BP for xc LDA / BLYP / BP] name or per element
- ``basis_set_file`` ["BASIS_MOLOPT"], ``potential_file`` ["GTH_POTENTIALS"]
- ``eps_scf`` [1e-6], ``max_scf`` [100]; without a template the input also has standard
  diagonalisation, Broyden mixing (ALPHA 0.3, NBROYDEN 8), ``SCF_GUESS ATOMIC`` and
  ``QS/EPS_DEFAULT 1e-12`` (change them in user_fp_params)
- ``added_mos`` [null: max(10, 2 x n_atoms) whenever the input smears and sets none]; -1 = all
- ``data_dir`` [null] extra folder where :meth:`Cp2kStyle.check` looks for the two files
  (then ``$CP2K_DATA_DIR``, ``/usr/share/cp2k``, ``base_dir``)

How ``input.inp`` is built, in layers (each later layer wins):

1. the base: the CP2K input file named by ``fp_template`` / ``external_input_path``
   (relative to ``base_dir``), or, without one, :data:`DEFAULT_INPUT` with all the defaults above;
2. the ``fp_params`` keys that were given (over a template only those given explicitly);
3. ``user_fp_params``: a nested dict mirroring CP2K sections, as in DP-GEN.  Keys are section
   or keyword names (case-insensitive); a dict value is a section, ``"_"`` its parameter
   (``{"XC_FUNCTIONAL": {"_": "PBE"}}``), a list of dicts repeated sections, DP-GEN's
   ``{"KIND": {"_": ["H", "O"], "POTENTIAL": ["GTH-PBE-q1", "GTH-PBE-q6"]}}`` form is expanded
   into one section per element, a scalar or list of scalars a keyword, ``None`` deletes;
4. what the reader needs, always enforced: ``GLOBAL/RUN_TYPE ENERGY_FORCE``,
   ``GLOBAL/PRINT_LEVEL MEDIUM`` (LOW prints no coordinates, kinds or cell, and dpdata's
   ``cp2k/output`` reader needs all three in the output), ``FORCE_EVAL/STRESS_TENSOR
   ANALYTICAL`` (NUMERICAL is kept if asked for), ``FORCE_EVAL/PRINT/FORCES ON`` and
   ``FORCE_EVAL/PRINT/STRESS_TENSOR ON`` written to the main output, and the frame itself:
   ``SUBSYS/CELL`` (A, B, C in Å; only PERIODIC is kept from the template), ``SUBSYS/COORD``
   (Å, one line per atom, the kind named by its ``type_map`` name), and a ``KIND`` section
   (``fp_params`` basis set and potential) for every element that has none.
   ``TOPOLOGY/COORD_FILE_NAME``, ``COORD_FILE_FORMAT`` and ``MULTIPLE_UNIT_CELL`` are removed,
   so DP-GEN templates that read ``coord.xyz`` work unchanged.

The input is held, parsed and written by ASE's CP2K input tree
(``ase.calculators.cp2k.parse_input`` / ``InputSection``); this module adds only what ASE lacks:
``#`` comments, ``\\`` continuation lines and nesting errors when parsing, case-insensitive
look-up, replacing and deleting keywords and sections, repeated ``KIND`` sections and the
``user_fp_params`` merge.  ASE writes a section's keywords (preprocessor lines such as ``@SET``
included) before its subsections, so a template whose ``@IF`` block holds a section is refused.

The task runs ``cp2k.psmp -i input.inp`` with all output in the file ``output``; the label is
read by ``dpdata.LabeledSystem(output, fmt="cp2k/output")`` (energy Hartree -> eV, forces
Hartree/Bohr -> eV/Å).  dpdata 1.1 reads the stress tensor only in CP2K's old layout
(``STRESS TENSOR [GPa]``); CP2K 2023 prints ``STRESS| Analytical stress tensor [GPa]``, so for
such outputs the virial is taken from that block with dpdata's own conversion
(virial = stress x volume, GPa -> eV/Å^3; checked against finite differences of the energy).
CP2K prints the cell with 3 decimals only, so the exact cell is taken from ``input.inp``
(after checking that it agrees with the output).

``dpgen init_bulk`` (DP-GEN's stages 1 and 3): :meth:`Cp2kStyle.write_relax_inputs` (CELL_OPT, or
GEO_OPT from ``relax_incar``) and :meth:`Cp2kStyle.write_md_inputs` (MD, NVT by default,
``md_nstep`` steps) build on the same input; ``relax_incar`` / ``md_incar`` name optional CP2K
inputs merged over it.  :meth:`Cp2kStyle.read_md` reads every MD step from the trajectory, force
and cell files and the output (dpdata's ``cp2k/aimd_output`` cannot read CP2K 2023's output).
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import dpdata
import numpy as np
from ase.calculators.cp2k import InputSection, parse_input
from dpdata.periodic_table import ELEMENTS
from dpdata.unit import EnergyConversion, ForceConversion, PressureConversion

from dargs import Argument

from ..params import arg
from .base import FpStyle, FpTaskFailed, check_finite, register

INPUT_FILE = "input.inp"
OUTPUT_FILE = "output"

#: marker CP2K (2023.1, qs_scf.F) prints when the SCF stopped at MAX_SCF without converging;
#: the run goes on and prints energy and forces, so this text is the only sign of it
SCF_NOT_CONVERGED = "SCF run NOT converged"
SCF_CONVERGED = "SCF run converged"
ABORT_MARKER = "[ABORT]"
END_MARKER = "PROGRAM ENDED AT"

#: the ``XC_FUNCTIONAL`` shortcuts of CP2K 2023
XC_SHORTCUTS = (
    "B3LYP", "BEEFVDW", "BLYP", "BP", "HCTH120", "LDA", "OLYP", "PADE", "PBE", "PBE0",
    "TPSS", "NO_SHORTCUT", "NONE",
)
#: default GTH potential family for an XC shortcut (GTH-PBE for any other)
_XC_POTENTIAL = {"LDA": "GTH-PADE", "PADE": "GTH-PADE", "BLYP": "GTH-BLYP", "BP": "GTH-BP"}

FP_PARAMS_DEFAULTS: dict[str, Any] = {
    "cutoff": 400.0,
    "rel_cutoff": 50.0,
    "kpoints": None,
    "smearing_temperature": 1000.0,
    "xc": "PBE",
    "basis_set": "DZVP-MOLOPT-SR-GTH",
    "potential": None,  # GTH-PBE (or the family matching xc)
    "basis_set_file": "BASIS_MOLOPT",
    "potential_file": "GTH_POTENTIALS",
    "eps_scf": 1.0e-6,
    "max_scf": 100,
    "added_mos": None,
    "data_dir": None,
}
_DEBIAN_DATA_DIR = "/usr/share/cp2k"
#: fp_params keys that set one keyword, and its path in ``&FORCE_EVAL/&DFT``
_FP_KEYWORDS = {
    "basis_set_file": "BASIS_SET_FILE_NAME", "potential_file": "POTENTIAL_FILE_NAME",
    "cutoff": "MGRID/CUTOFF", "rel_cutoff": "MGRID/REL_CUTOFF",
    "eps_scf": "SCF/EPS_SCF", "max_scf": "SCF/MAX_SCF",
}


def _num(v: Any, integer: bool = False) -> bool:
    return isinstance(v, int if integer else (int, float)) and not isinstance(v, bool)


#: fp_params checks: key -> (accepts a given value, what the value must be)
_FP_RULES = {
    **dict.fromkeys(("cutoff", "rel_cutoff", "eps_scf"), (lambda v: _num(v) and v > 0, "must be a positive number")),
    "max_scf": (lambda v: _num(v, True) and v >= 1, "must be an integer >= 1"),
    "added_mos": (lambda v: _num(v, True) and v >= -1, "must be an integer >= -1 (-1: all)"),
    "kpoints": (
        lambda v: isinstance(v, (list, tuple)) and len(v) == 3 and all(_num(k, True) and k >= 1 for k in v),
        "must be three integers >= 1 (a Monkhorst-Pack mesh), or null for the Gamma point only",
    ),
    "smearing_temperature": (
        lambda v: _num(v) and v >= 0, "must be a temperature in K, or 0 / null for no smearing"
    ),
}
#: the input without a template, before all fp_params (defaults filled in) are written into it
DEFAULT_INPUT = """\
&GLOBAL
  PROJECT cp2k
&END GLOBAL
&FORCE_EVAL
  METHOD QS
  STRESS_TENSOR ANALYTICAL
  &DFT
    &SCF
      SCF_GUESS ATOMIC
      &DIAGONALIZATION ON
        ALGORITHM STANDARD
      &END DIAGONALIZATION
      &MIXING T
        METHOD BROYDEN_MIXING
        ALPHA 0.3
        NBROYDEN 8
      &END MIXING
    &END SCF
    &QS
      EPS_DEFAULT 1.0E-12
    &END QS
  &END DFT
&END FORCE_EVAL
"""


# --------------------------------------------------------------------------------------
# What ASE's CP2K InputSection lacks: case-insensitive look-up, replace/delete, merge a dict.
# ASE keeps a keyword as its line ("NAME value"; in &COORD "kind x y z"), a section as
# name (upper case), params (its parameter or None), keywords and subsections.
# --------------------------------------------------------------------------------------


def parse_cp2k_input(text: str, source: str = "<input>") -> InputSection:
    """Parse CP2K input text into ASE's tree (:func:`ase.calculators.cp2k.parse_input`).

    Before ASE's parser (which drops ``!`` comments and nests ``&NAME`` ... ``&END``), ``#``
    comments are dropped, ``\\`` continuation lines joined and the nesting checked.
    Preprocessor lines (``@SET``, ``@INCLUDE``) stay as keyword lines of their section; ASE
    writes a section's keywords before its subsections, so an ``@IF`` block that holds a
    section is refused rather than silently reordered.

    Raises
    ------
    ValueError
        on an ``&END`` without a section, a mismatched ``&END NAME``, an unclosed section or
        a section inside an ``@IF`` block.
    """
    lines: list[str] = []
    stack: list[str] = []
    buf, if_depth = "", 0
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        s = re.split(r"(?:^|\s)[#!]", buf + line, maxsplit=1)[0].strip().replace("\t", " ")
        buf = ""
        head = s.split()[0].upper() if s else ""
        if_depth += (head == "@IF") - (head == "@ENDIF")
        if head == "&END":
            name = s[4:].strip().upper()
            if not stack:
                raise ValueError(f"{source}:{lineno}: '&END {name}' without an open section")
            if name and name != stack[-1]:
                raise ValueError(f"{source}:{lineno}: '&END {name}' closes section &{stack[-1]}")
            stack.pop()
        elif head.startswith("&"):
            if if_depth > 0:
                raise ValueError(f"{source}:{lineno}: section {head} inside an @IF block is not supported")
            stack.append(head[1:])
        lines.append(s)
    if stack:
        raise ValueError(f"{source}: section &{stack[-1]} is never closed (&END missing)")
    return parse_input("\n".join(lines + [buf]))


def render_cp2k_input(root: InputSection) -> str:
    """The input file text of ``root`` (ASE's :meth:`InputSection.write`, one line each)."""
    return "\n".join(root.write()) + "\n"


def format_value(value: Any) -> str:
    """A CP2K keyword value: booleans ``.TRUE.``/``.FALSE.``, lists joined by spaces."""
    if isinstance(value, bool):
        return ".TRUE." if value else ".FALSE."
    if isinstance(value, (list, tuple)):
        return " ".join(format_value(v) for v in value)
    return str(value)


def _name(line: str) -> str:
    return line.split(maxsplit=1)[0].upper() if line.strip() else ""


def keyword_values(sec: InputSection, name: str) -> list[str]:
    """The values of every keyword line ``name`` (case-insensitive) of ``sec``, in order."""
    return [(line.split(maxsplit=1) + [""])[1] for line in sec.keywords if _name(line) == name.upper()]


def keyword(sec: InputSection, name: str) -> str | None:
    """The value of the first keyword ``name`` (case-insensitive) of ``sec``, or ``None``."""
    return next(iter(keyword_values(sec, name)), None)


def set_keyword(sec: InputSection, path: str, value: Any) -> None:
    """Set keyword ``path`` (``"RUN_TYPE"`` or ``"GLOBAL/RUN_TYPE"``) to :func:`format_value` of ``value``.

    Every earlier line of that keyword is replaced; missing sections on the path are created
    by ASE's :meth:`InputSection.get_subsection` (which raises ``Exception`` if one is repeated).
    """
    *parents, name = path.upper().split("/")
    if parents:
        sec = sec.get_subsection("/".join(parents))
    delete(sec, name, sections=False)
    sec.keywords.append(f"{name} {format_value(value)}".rstrip())


def delete(sec: InputSection, name: str, sections: bool = True) -> None:
    """Remove every keyword line ``name`` of ``sec`` and, if ``sections``, every subsection ``name``."""
    sec.keywords = [line for line in sec.keywords if _name(line) != name.upper()]
    if sections:
        sec.subsections = [s for s in sec.subsections if s.name != name.upper()]


def subsections(sec: InputSection, name: str, param: Any = None) -> list[InputSection]:
    """The direct subsections ``name`` of ``sec`` (with parameter ``param`` if given), case-insensitive."""
    want = None if param is None else format_value(param).upper()
    return [
        s for s in sec.subsections
        if s.name == name.upper() and (want is None or (s.params or "").upper() == want)
    ]


def subsection(sec: InputSection, name: str, param: Any = None, create: bool = True) -> InputSection | None:
    """The first subsection ``name`` (with parameter ``param`` if given), appended if missing.

    Unlike ASE's ``get_subsection`` this tells repeated sections (``&KIND Al``, ``&KIND Mg``)
    apart.  Returns ``None`` only when it is missing and ``create`` is false.
    """
    found = subsections(sec, name, param)
    if found or not create:
        return found[0] if found else None
    new = InputSection(name, None if param is None else format_value(param))
    sec.subsections.append(new)
    return new


#: sections told apart by their parameter (``&KIND Al``, ``&KIND Mg``); any other section
#: named in a dict is the first one of that name, its parameter replaced
KEYED_SECTIONS = {"KIND"}


def merge_dict(sec: InputSection, params: dict, where: str = "user_fp_params") -> None:
    """Merge a DP-GEN style nested dict into ``sec`` in place.

    A dict value is a subsection (``"_"`` its parameter), a list of dicts repeated subsections,
    a dict whose ``"_"`` is a list DP-GEN's compact form of repeated subsections (list-valued
    keywords are zipped with it), ``None`` removes the keyword or subsection, an ``"@..."`` key
    adds a preprocessor line, anything else sets a keyword (:func:`format_value`).  ``KIND``
    subsections are matched by name and parameter (a new one is added for a new parameter),
    others by name (``{"XC_FUNCTIONAL": {"_": "BLYP"}}`` replaces the functional).

    Raises
    ------
    ValueError
        naming the offending key path, for a compact form whose lists differ in length.
    """
    for key, value in params.items():
        path = f"{where}.{key}"
        if key == "_":
            sec.params = format_value(value)
        elif key.startswith("@"):
            sec.keywords.append(f"{key.upper()} {format_value(value)}".rstrip())
        elif value is None:
            delete(sec, key)
        elif isinstance(value, dict) and isinstance(value.get("_"), list):
            n = len(value["_"])
            for name, v in value.items():
                if isinstance(v, list) and len(v) != n:
                    raise ValueError(
                        f"{path}.{name} has {len(v)} entries but {path}._ has {n}; "
                        "in the compact form every list must have one entry per section"
                    )
            for i, p in enumerate(value["_"]):
                sub = {k: (v[i] if isinstance(v, list) else v) for k, v in value.items() if k != "_"}
                merge_dict(subsection(sec, key, p), sub, f"{path}[{i}]")
        elif isinstance(value, dict):
            param = value.get("_")
            target = subsection(sec, key, param, create=False)
            if target is None and param is not None and key.upper() not in KEYED_SECTIONS:
                target = subsection(sec, key, create=False)  # same name, parameter replaced
            target = target or subsection(sec, key, param)
            merge_dict(target, value, path)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            existing = subsections(sec, key)
            for i, v in enumerate(value):
                if "_" in v:  # matched by parameter
                    sub = subsection(sec, key, v["_"])
                elif i < len(existing):  # the i-th section of that name
                    sub = existing[i]
                else:
                    sub = InputSection(key)
                    sec.subsections.append(sub)
                merge_dict(sub, {k: w for k, w in v.items() if k != "_"}, f"{path}[{i}]")
        else:
            set_keyword(sec, key, value)


# --------------------------------------------------------------------------------------
# The fp style
# --------------------------------------------------------------------------------------


def _openmpi_mpirun() -> str | None:
    """An ``mpirun`` from the same MPI as ``cp2k.psmp`` (the one beside it), else any on PATH.

    A Python venv may put MPICH's ``mpirun`` (the ``mpich`` wheel) first on PATH; CP2K from
    Debian is built with Open MPI, and MPICH's launcher would start independent serial copies.
    """
    cp2k = shutil.which("cp2k.psmp")
    if cp2k:
        beside = Path(os.path.realpath(cp2k)).parent / "mpirun"
        if beside.is_file():
            return str(beside)
        beside = Path(cp2k).parent / "mpirun"
        if beside.is_file():
            return str(beside)
    return shutil.which("mpirun")


def _abort_message(text: str) -> str:
    """The message inside CP2K's ``[ABORT]`` box, on one line."""
    lines = text.splitlines()
    idx = max(i for i, ln in enumerate(lines) if ABORT_MARKER in ln)
    msg = []
    for ln in lines[idx + 1 :]:
        if ln.strip().startswith("****"):
            break
        body = ln.strip().strip("*")
        body = re.sub(r"^\s*(\\___/|O/\||/\| \||/ \\|\|)", "", body).strip()
        if body:
            msg.append(body)
    return " ".join(msg) or "(no message)"


def _output_text(task_dir: Path) -> str:
    """The CP2K ``output`` of a task.

    Raises
    ------
    FpTaskFailed
        when it is missing or CP2K aborted (the abort message quoted).
    """
    out = Path(task_dir) / OUTPUT_FILE
    if not out.is_file():
        raise FpTaskFailed(f"{task_dir}: no '{OUTPUT_FILE}' file (CP2K did not run; check the command)")
    text = out.read_text(errors="replace")
    if ABORT_MARKER in text:
        raise FpTaskFailed(f"{task_dir}: CP2K aborted: {_abort_message(text)}")
    return text


def _require_end(task_dir: Path, text: str) -> None:
    """Raise FpTaskFailed unless the output reached CP2K's end line."""
    if END_MARKER not in text:
        raise FpTaskFailed(f"{task_dir}: CP2K did not finish ('{END_MARKER}' missing: killed or crashed)")


_STRESS_HEAD = re.compile(r"^\s*STRESS\|\s+(Analytical|Numerical) stress tensor \[GPa\]")


def _stress_block(lines: list[str], head: int) -> np.ndarray | None:
    """The (3, 3) GPa tensor printed under the ``STRESS|`` header at line ``head``, or None if malformed."""
    rows = []
    for ln in lines[head + 2 : head + 5]:
        parts = ln.split()
        if len(parts) != 5 or parts[0] != "STRESS|" or parts[1] not in ("x", "y", "z"):
            return None
        rows.append([float(v) for v in parts[2:5]])
    return np.array(rows) if len(rows) == 3 else None


def _stress_heads(lines: list[str]) -> list[int]:
    return [i for i, ln in enumerate(lines) if _STRESS_HEAD.match(ln)]


def _stress_gpa(text: str) -> np.ndarray | None:
    """The last ``STRESS| Analytical/Numerical stress tensor [GPa]`` block of CP2K >= 8, (3, 3) GPa."""
    lines = text.splitlines()
    heads = _stress_heads(lines)
    return _stress_block(lines, heads[-1]) if heads else None


def stress_blocks_gpa(text: str) -> list[np.ndarray]:
    """Every well-formed ``STRESS| Analytical/Numerical stress tensor [GPa]`` block of a CP2K >= 8
    output, (3, 3) GPa each, in output order."""
    lines = text.splitlines()
    return [b for b in (_stress_block(lines, i) for i in _stress_heads(lines)) if b is not None]


def _smearing_on(scf: InputSection) -> bool:
    """Whether an ``&SCF`` section switches Fermi-level smearing on (``&SMEAR`` / ``&SMEAR ON``)."""
    smear = subsection(scf, "SMEAR", create=False)
    return smear is not None and (smear.params or "").strip().upper() in ("", "ON", "T", "TRUE", ".TRUE.", "YES")


def _input_cell(path: Path) -> np.ndarray | None:
    """The (3, 3) cell in Å of the ``&CELL`` A/B/C that :meth:`Cp2kStyle.write_inputs` wrote, or None."""
    if not path.is_file():
        return None
    try:
        root = parse_cp2k_input(path.read_text(), str(path))
        cell = subsection(root.get_subsection("FORCE_EVAL/SUBSYS"), "CELL", create=False)
        rows = []
        for label in "ABC":
            parts = keyword(cell, label).split()
            if parts[0].lower() == "[angstrom]":
                parts = parts[1:]
            rows.append([float(v) for v in parts])
        return np.array(rows)
    except (ValueError, IndexError, AttributeError):
        return None


def _find_data_file(name: str, dirs: list[Path]) -> Path | None:
    p = Path(name)
    if p.is_absolute():
        return p if p.is_file() else None
    for d in dirs:
        if (d / p).is_file():
            return d / p
    return None


def _file_entries(path: Path) -> dict[str, set[str]]:
    """``{ELEMENT: {NAME, ...}}`` from a CP2K basis-set or potential file (header lines only)."""
    entries: dict[str, set[str]] = {}
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0][:1].isalpha():
            el = parts[0]
            if el in ELEMENTS or el.capitalize() in ELEMENTS:
                entries.setdefault(el.upper(), set()).update(p.upper() for p in parts[1:])
    return entries


# --------------------------------------------------------------------------------------
# init_bulk (DP-GEN's stages 1 and 3): relaxation and AIMD with CP2K
# --------------------------------------------------------------------------------------

log = logging.getLogger(__name__)

#: run types of the stage-1 relaxation (``relax_incar`` may choose; default CELL_OPT)
RELAX_RUN_TYPES = ("CELL_OPT", "GEO_OPT")
#: ``MOTION/MD`` keywords of the stage-3 AIMD unless the template, ``user_fp_params`` or
#: ``md_incar`` set them; with NVT and no ``&THERMOSTAT``, a CSVR thermostat (100 fs) is added
MD_DEFAULTS = {"ENSEMBLE": "NVT", "TIMESTEP": 1.0, "TEMPERATURE": 300.0}
#: project name of relaxation and AIMD runs: their files are ``cp2k-pos-1.xyz``, ``cp2k-frc-1.xyz``, ``cp2k-1.cell``
STAGE_PROJECT = "cp2k"
GEO_OPT_DONE = "GEOMETRY OPTIMIZATION COMPLETED"
_ENERGY_LINE = re.compile(r"ENERGY\|\s+Total FORCE_EVAL \(\s*\w+\s*\) energy \[a\.u\.\]:\s+(\S+)")


def section_at(root: InputSection, path: str) -> InputSection | None:
    """The subsection at ``path`` ("MOTION/MD"), first of each name, or None; creates nothing."""
    sec = root
    for name in path.split("/"):
        sec = subsection(sec, name, create=False)
        if sec is None:
            return None
    return sec


def merge_sections(dst: InputSection, src: InputSection) -> None:
    """Merge the parsed CP2K input ``src`` into ``dst`` in place.

    A keyword of ``src`` replaces every line of that keyword in ``dst`` (preprocessor lines
    are added); a section is merged into the first section of that name (``KIND`` sections
    are matched by their parameter), or appended when ``dst`` has none.
    """
    names = {_name(line) for line in src.keywords if not _name(line).startswith("@")}
    dst.keywords = [line for line in dst.keywords if _name(line) not in names] + list(src.keywords)
    for sub in src.subsections:
        keyed = sub.name in KEYED_SECTIONS
        target = subsection(dst, sub.name, sub.params if keyed else None, create=False)
        if target is None:
            dst.subsections.append(sub)
            continue
        if sub.params is not None:
            target.params = sub.params
        merge_sections(target, sub)


def xyz_frames(path: Path) -> list[tuple[int | None, list[str], np.ndarray]]:
    """Frames of a CP2K xyz file (``-pos-1.xyz`` in Å, ``-frc-1.xyz`` in Hartree/Bohr).

    Returns ``(step, names, values (n_atoms, 3))`` per frame; ``step`` from the comment
    line's ``i = <step>`` (None if absent).  A truncated last frame is dropped.
    """
    lines = Path(path).read_text(errors="replace").splitlines()
    frames, i = [], 0
    while i < len(lines):
        head = lines[i].split()
        if len(head) != 1 or not head[0].isdigit():
            i += 1
            continue
        n = int(head[0])
        block = lines[i + 2:i + 2 + n]
        if len(block) < n:
            break
        m = re.search(r"\bi\s*=\s*(\d+)", lines[i + 1]) if i + 1 < len(lines) else None
        rows = [ln.split() for ln in block]
        frames.append((int(m.group(1)) if m else None, [r[0] for r in rows],
                       np.array([[float(v) for v in r[1:4]] for r in rows])))
        i += 2 + n
    return frames


def cell_rows(path: Path) -> dict[int, np.ndarray]:
    """``step -> (3, 3)`` cell in Å from a CP2K ``-1.cell`` file (empty if there is none)."""
    out = {}
    if not Path(path).is_file():
        return out
    for line in Path(path).read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 11 and not line.lstrip().startswith("#"):
            out[int(parts[0])] = np.array([float(v) for v in parts[2:11]]).reshape(3, 3)
    return out


def labelled_frames(names: list[str], type_map: list[str], cells: np.ndarray, coords: np.ndarray,
                    labels: dict | None = None) -> dpdata.System:
    """A dpdata system in ``type_map`` order from per-atom ``names`` (cells, coords in Å; labels in eV, eV/Å).

    Raises
    ------
    ValueError
        for a name that is not in ``type_map``.
    """
    extra = sorted(set(names) - set(type_map))
    if extra:
        raise ValueError(f"atom kinds {extra} are not in type_map = {type_map}")
    types = np.array([type_map.index(n) for n in names])
    order = np.argsort(types, kind="stable")
    data = {
        "atom_names": list(type_map), "atom_numbs": [int((types == k).sum()) for k in range(len(type_map))],
        "atom_types": types[order], "cells": np.asarray(cells, dtype=float),
        "coords": np.asarray(coords, dtype=float)[:, order], "orig": np.zeros(3), "nopbc": False,
    }
    if labels is None:
        return dpdata.System(data=data)
    data.update({k: (v[:, order] if k == "forces" else v) for k, v in labels.items()})
    return dpdata.LabeledSystem(data=data)


@register
class Cp2kStyle(FpStyle):
    """Label with CP2K: one ENERGY_FORCE run per frame, read back with dpdata ``cp2k/output``.

    See the module docstring for the ``param.json`` keys and how ``input.inp`` is built.
    """

    name = "cp2k"

    @classmethod
    def args(cls) -> list[Argument]:
        """``fp_params`` (see the module docstring), ``user_fp_params``, and a template: ``external_input_path`` (DP-GEN) or ``fp_template``."""
        return [
            arg("fp_params", dict, "CP2K settings: cutoff, rel_cutoff, kpoints, smearing_temperature, xc, "
                "basis_set, potential, eps_scf, max_scf, added_mos, data_dir", default=None),
            arg("user_fp_params", dict, "nested CP2K sections (DP-GEN's form)", default=None),
            arg("external_input_path", str, "CP2K input template (DP-GEN's key)", default=None),
            arg("fp_template", str, "CP2K input template", default=None),
        ]

    def __init__(self, param: dict, base_dir: Path):
        super().__init__(param, base_dir)
        self.fp: dict = dict(param.get("fp_params") or {})

    # -- parameters -----------------------------------------------------------------

    def _template_path(self) -> Path | None:
        keys = [k for k in ("fp_template", "external_input_path") if self.param.get(k)]
        if len(keys) > 1:
            raise ValueError(
                "fp_template and external_input_path are both given "
                f"({self.param['fp_template']!r}, {self.param['external_input_path']!r}); "
                "they name the same thing, give one"
            )
        if not keys:
            return None
        p = Path(self.param[keys[0]])
        return p if p.is_absolute() else self.base_dir / p

    def _opt(self, key: str):
        """fp_params[key], or its default."""
        value = self.fp.get(key)
        if value is None and key == "potential":
            return _XC_POTENTIAL.get(str(self._opt("xc")).upper(), "GTH-PBE")
        return FP_PARAMS_DEFAULTS[key] if value is None else value

    def _per_element(self, key: str, element: str) -> str:
        value = self._opt(key)
        if isinstance(value, dict):
            if element not in value:
                raise ValueError(
                    f"fp_params.{key} = {value!r} has no entry for {element!r}; "
                    f"give one name for every element of type_map {self.type_map}"
                )
            return str(value[element])
        return str(value)

    def _data_dirs(self) -> list[Path]:
        dirs = []
        if self.fp.get("data_dir"):
            d = Path(self.fp["data_dir"])
            dirs.append(d if d.is_absolute() else self.base_dir / d)
        if os.environ.get("CP2K_DATA_DIR"):
            dirs.append(Path(os.environ["CP2K_DATA_DIR"]))
        dirs += [Path(_DEBIAN_DATA_DIR), Path(_DEBIAN_DATA_DIR) / "data", self.base_dir]
        return dirs

    def _apply_fp_params(self, dft: InputSection, explicit_only: bool) -> None:
        """Write fp_params into ``&DFT`` (over a template only the keys given explicitly)."""
        for key, path in _FP_KEYWORDS.items():
            if self.fp.get(key) is not None or not explicit_only:
                set_keyword(dft, path, self._opt(key))
        if self.fp.get("kpoints") is not None:
            kp = [int(k) for k in self.fp["kpoints"]]
            if kp == [1, 1, 1]:
                delete(dft, "KPOINTS")
            else:
                set_keyword(dft, "KPOINTS/SCHEME", ["MONKHORST-PACK", *kp])
        if "smearing_temperature" in self.fp or not explicit_only:
            temp = self.fp.get("smearing_temperature", FP_PARAMS_DEFAULTS["smearing_temperature"])
            smear = {"_": "ON", "METHOD": "FERMI_DIRAC", "ELECTRONIC_TEMPERATURE": f"[K] {float(temp or 0)}"}
            merge_dict(dft, {"SCF": {"SMEAR": smear if temp else None}}, "fp_params")
        if self.fp.get("xc") is not None or not explicit_only:
            merge_dict(dft, {"XC": {"XC_FUNCTIONAL": {"_": str(self._opt("xc")).upper()}}}, "fp_params")

    def _base_tree(self) -> InputSection:
        """The input without the frame: template or defaults, fp_params, user_fp_params, enforced prints.

        Raises
        ------
        ValueError
            for an unreadable template, an unparsable one, or not exactly one FORCE_EVAL.
        """
        tpl = self._template_path()
        if tpl is None:
            root = parse_cp2k_input(DEFAULT_INPUT)
        else:
            try:
                text = tpl.read_text()
            except OSError as err:
                raise ValueError(f"fp_template = {str(tpl)!r} cannot be read ({err})") from err
            root = parse_cp2k_input(text, str(tpl))
        self._apply_fp_params(subsection(subsection(root, "FORCE_EVAL"), "DFT"), tpl is not None)
        merge_dict(root, self.param.get("user_fp_params") or {}, "user_fp_params")

        set_keyword(root, "GLOBAL/RUN_TYPE", "ENERGY_FORCE")
        set_keyword(root, "GLOBAL/PRINT_LEVEL", "MEDIUM")
        fes = subsections(root, "FORCE_EVAL")
        if len(fes) != 1:
            raise ValueError(
                f"the CP2K input has {len(fes)} &FORCE_EVAL sections; the cp2k fp style needs exactly one"
            )
        fe = fes[0]
        if keyword(fe, "METHOD") is None:
            set_keyword(fe, "METHOD", "QS")
        if (keyword(fe, "STRESS_TENSOR") or "").upper() != "NUMERICAL":
            set_keyword(fe, "STRESS_TENSOR", "ANALYTICAL")
        for name in ("FORCES", "STRESS_TENSOR"):
            sec = fe.get_subsection(f"PRINT/{name}")
            sec.params = "ON"
            delete(sec, "FILENAME")
        topo = subsection(fe.get_subsection("SUBSYS"), "TOPOLOGY", create=False)
        for kw in ("COORD_FILE_NAME", "COORD_FILE_FORMAT", "MULTIPLE_UNIT_CELL") if topo else ():
            delete(topo, kw)
        return root

    def _kind_sections(self, root: InputSection, elements: list[str]) -> dict[str, InputSection]:
        """The KIND section for each element, added from fp_params where the input has none."""
        subsys = root.get_subsection("FORCE_EVAL/SUBSYS")
        kinds = {}
        for el in elements:
            kind = subsection(subsys, "KIND", el, create=False)
            if kind is None:
                kind = subsection(subsys, "KIND", el)
                set_keyword(kind, "BASIS_SET", self._per_element("basis_set", el))
                set_keyword(kind, "POTENTIAL", self._per_element("potential", el))
            kinds[el] = kind
        return kinds

    def check(self) -> None:
        """Validate ``fp_params``, ``user_fp_params``, the template and the basis/potential names.

        Every element of ``type_map`` must get a KIND whose BASIS_SET and POTENTIAL names are
        listed for that element in the files named by ``BASIS_SET_FILE_NAME`` /
        ``POTENTIAL_FILE_NAME``, looked up in ``fp_params.data_dir``, ``$CP2K_DATA_DIR``,
        ``/usr/share/cp2k`` and ``base_dir``.

        Raises
        ------
        ValueError
            naming the key, the value and what is allowed.
        """
        unknown = sorted(set(self.fp) - set(FP_PARAMS_DEFAULTS))
        if unknown:
            raise ValueError(
                f"fp_params has unknown keys {unknown} for fp_style 'cp2k'; allowed: "
                f"{sorted(FP_PARAMS_DEFAULTS)} (any other CP2K setting goes in user_fp_params "
                "or the template)"
            )
        for key, (ok, what) in _FP_RULES.items():
            v = self.fp.get(key)
            if v is not None and not ok(v):
                raise ValueError(f"fp_params.{key} = {v!r}: {what}")
        xc = str(self._opt("xc")).upper()
        if xc not in XC_SHORTCUTS:
            raise ValueError(
                f"fp_params.xc = {self.fp.get('xc')!r}: not a CP2K XC_FUNCTIONAL shortcut; allowed: "
                f"{list(XC_SHORTCUTS)} (other functionals go in user_fp_params or the template)"
            )
        user = self.param.get("user_fp_params")
        if user is not None and not isinstance(user, dict):
            raise ValueError(
                f"user_fp_params = {user!r}: must be a nested dict of CP2K sections, e.g. "
                '{"FORCE_EVAL": {"DFT": {"SCF": {"MAX_SCF": 200}}}}'
            )
        tpl = self._template_path()
        if tpl is not None and not tpl.is_file():
            key = "fp_template" if self.param.get("fp_template") else "external_input_path"
            raise ValueError(
                f"{key} = {self.param[key]!r}: no such file {str(tpl)!r} "
                f"(relative paths are resolved against {str(self.base_dir)!r})"
            )
        root = self._base_tree()
        dft = root.get_subsection("FORCE_EVAL/DFT")
        dirs = self._data_dirs()
        files = {}
        for kw, what in (("BASIS_SET_FILE_NAME", "basis_set_file"), ("POTENTIAL_FILE_NAME", "potential_file")):
            names = keyword_values(dft, kw)
            if not names:
                raise ValueError(f"the CP2K input has no DFT/{kw}; set fp_params.{what}")
            found = {}
            for name in names:
                path = _find_data_file(name, dirs)
                if path is None:
                    raise ValueError(
                        f"DFT/{kw} = {name!r} (fp_params.{what}) is not found in "
                        f"{[str(d) for d in dirs]}; set fp_params.data_dir to the folder holding it"
                    )
                for el, names_ in _file_entries(path).items():
                    found.setdefault(el, set()).update(names_)
            files[kw] = (names, found)
        for el, kind in self._kind_sections(root, list(self.type_map)).items():
            element = keyword(kind, "ELEMENT") or el
            if element.capitalize() not in ELEMENTS:
                raise ValueError(
                    f"type_map entry {el!r} is not an element symbol; give its KIND section an "
                    "ELEMENT keyword (in user_fp_params or the template)"
                )
            for kw, key, fkw in (
                ("BASIS_SET", "basis_set", "BASIS_SET_FILE_NAME"),
                ("POTENTIAL", "potential", "POTENTIAL_FILE_NAME"),
            ):
                entry = keyword(kind, kw)
                if entry is None:
                    raise ValueError(f"KIND {el} has no {kw}; set fp_params.{key}")
                name = entry.split()[-1] if entry.split() else ""
                fnames, found = files[fkw]
                available = sorted(found.get(element.upper(), set()))
                if name.upper() not in available:
                    raise ValueError(
                        f"{kw} {name!r} for element {element!r} (fp_params.{key}) is not in "
                        f"{fnames}; names there for {element}: {available or 'none'}"
                    )

    # -- tasks ----------------------------------------------------------------------

    def write_inputs(self, frame: dpdata.System, task_dir: Path) -> list[str]:
        """Write ``input.inp`` (CELL and COORD in Å) for the one frame of ``frame`` into ``task_dir``.

        Parameters
        ----------
        frame : dpdata.System
            one frame; cell ``(1, 3, 3)`` Å, coordinates ``(1, n_atoms, 3)`` Å; atom names are
            used as CP2K kind names (so they must be ``type_map`` names).

        Returns
        -------
        list[str]
            ``["input.inp"]``.

        Raises
        ------
        ValueError
            if ``frame`` does not hold exactly one frame, or the input cannot be built.
        """
        if frame.get_nframes() != 1:
            raise ValueError(f"write_inputs needs one frame, got {frame.get_nframes()}")
        task_dir = Path(task_dir)
        root = self._base_tree()
        names = [frame["atom_names"][t] for t in frame["atom_types"]]
        present = [n for n in frame["atom_names"] if n in names]
        subsys = root.get_subsection("FORCE_EVAL/SUBSYS")
        old_cell = subsection(subsys, "CELL", create=False)
        periodic = keyword(old_cell, "PERIODIC") if old_cell is not None else None
        delete(subsys, "CELL")
        delete(subsys, "COORD")
        cell, coord = InputSection("CELL"), InputSection("COORD")
        cell.keywords = [f"{label} [angstrom] " + " ".join(f"{x:.10f}" for x in vec)
                         for label, vec in zip("ABC", frame["cells"][0])]
        if periodic is not None:
            set_keyword(cell, "PERIODIC", periodic)
        coord.keywords = ["UNIT angstrom", "SCALED .FALSE."] + [
            f"{name} " + " ".join(f"{x:.10f}" for x in xyz) for name, xyz in zip(names, frame["coords"][0])
        ]
        subsys.subsections[0:0] = [cell, coord]
        self._kind_sections(root, present)
        scf = root.get_subsection("FORCE_EVAL/DFT/SCF")
        added = self.fp.get("added_mos")
        if added is None and keyword(scf, "ADDED_MOS") is None and _smearing_on(scf):
            added = max(10, 2 * len(names))  # smearing needs empty states
        if added is not None:
            set_keyword(scf, "ADDED_MOS", added)
        task_dir.mkdir(parents=True, exist_ok=True)
        (task_dir / INPUT_FILE).write_text(render_cp2k_input(root))
        return [INPUT_FILE]

    def default_command(self) -> str:
        """``mpirun -np <cores> cp2k.psmp -i input.inp > output 2>&1`` (Open MPI, root allowed).

        Uses the ``mpirun`` beside ``cp2k.psmp`` (Open MPI on Debian), one OpenMP thread per
        rank, and Open MPI's run-as-root variables (harmless for other MPIs); without any
        ``mpirun``, ``cp2k.psmp`` runs alone.
        """
        cp2k = shutil.which("cp2k.psmp") or "cp2k.psmp"
        mpirun = _openmpi_mpirun()
        env = "OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"
        launch = f"{shlex.quote(mpirun)} -np {os.cpu_count() or 1} " if mpirun else ""
        return f"{env} {launch}{shlex.quote(cp2k)} -i {INPUT_FILE} > {OUTPUT_FILE} 2>&1"

    def read_label(self, task_dir: Path) -> dpdata.LabeledSystem:
        """Read ``output`` of a finished task with dpdata ``cp2k/output``.

        Returns
        -------
        dpdata.LabeledSystem
            one frame, atom names mapped onto ``type_map``: energies ``(1,)`` eV, forces
            ``(1, n_atoms, 3)`` eV/Å, virials ``(1, 3, 3)`` eV, cells ``(1, 3, 3)`` Å (exact,
            from ``input.inp`` when present), coords ``(1, n_atoms, 3)`` Å (6 decimals).

        Raises
        ------
        FpTaskFailed
            when ``output`` is missing, CP2K aborted (the abort message is quoted) or did not
            reach its end, the SCF did not converge ("SCF run NOT converged"), dpdata cannot
            read the output (e.g. a kind name not in ``type_map``), the output's cell is not
            the input's, there is no stress tensor, or a number is not finite.
        """
        task_dir = Path(task_dir)
        text = _output_text(task_dir)
        if SCF_NOT_CONVERGED in text:
            raise FpTaskFailed(
                f"{task_dir}: CP2K printed '{SCF_NOT_CONVERGED}' (raise MAX_SCF, lower the mixing "
                "ALPHA or add smearing)"
            )
        _require_end(task_dir, text)
        if SCF_CONVERGED not in text:
            raise FpTaskFailed(f"{task_dir}: no '{SCF_CONVERGED}' in the output")
        try:
            system = dpdata.LabeledSystem(str(task_dir / OUTPUT_FILE), fmt="cp2k/output", type_map=self.type_map)
        except Exception as err:  # dpdata raises many kinds here
            raise FpTaskFailed(f"{task_dir}: dpdata cannot read {OUTPUT_FILE}: {err!r}") from err
        cell = _input_cell(task_dir / INPUT_FILE)
        if cell is not None and system.get_nframes() == 1:
            # CP2K prints the cell with 3 decimals (``CELL| Vector``); take the exact one from
            # the input after checking that the output belongs to it
            if not np.allclose(system["cells"][0], cell, atol=2e-3):
                raise FpTaskFailed(
                    f"{task_dir}: the cell in {OUTPUT_FILE} {system['cells'][0].tolist()} is not "
                    f"the cell of {INPUT_FILE} {cell.tolist()}"
                )
            system.data["cells"] = cell[np.newaxis].copy()
        if system.get_nframes() == 1 and "virials" not in system.data:
            stress = _stress_gpa(text)
            if stress is None:
                raise FpTaskFailed(f"{task_dir}: no stress tensor in the output (STRESS_TENSOR off?)")
            gpa = PressureConversion("eV/angstrom^3", "GPa").value()
            volume = abs(np.linalg.det(system["cells"][0]))
            system.data["virials"] = (stress * volume / gpa)[np.newaxis]
        return check_finite(system, task_dir)

    # -- init_bulk (DP-GEN's stages 1 and 3): relaxation and AIMD --------------------
    #
    # The input is the single-point input of :meth:`write_inputs` (template, fp_params,
    # user_fp_params, the frame), then the optional ``relax_incar`` / ``md_incar`` file
    # (a CP2K input, e.g. ``&GLOBAL RUN_TYPE GEO_OPT`` or a ``&MOTION`` section) merged over
    # it, then what the readers need: RUN_TYPE, ``MOTION/MD/STEPS``, ``PROJECT cp2k`` and
    # the trajectory, force and cell files at every step.

    def stage_fragment(self, key: str) -> InputSection | None:
        """The parsed CP2K input named by ``relax_incar`` / ``md_incar``, or None when unset.

        Raises
        ------
        ValueError
            for a missing or unparsable file, or one that holds the structure (&CELL / &COORD).
        """
        value = self.param.get(key)
        if not value:
            return None
        path = Path(value) if Path(value).is_absolute() else self.base_dir / value
        if not path.is_file():
            raise ValueError(f"{key} = {value!r}: no such file {str(path)!r} (with fp_style 'cp2k' it is an "
                             "optional CP2K input merged over the relaxation / AIMD input)")
        root = parse_cp2k_input(path.read_text(), str(path))
        for sec in ("CELL", "COORD"):
            if section_at(root, f"FORCE_EVAL/SUBSYS/{sec}") is not None:
                raise ValueError(f"{key} = {value!r} holds FORCE_EVAL/SUBSYS/&{sec}: the structure comes from "
                                 "init_bulk; remove that section")
        return root

    def _fragment_run_type(self, key: str, allowed: tuple[str, ...]) -> str | None:
        frag = self.stage_fragment(key)
        glob = section_at(frag, "GLOBAL") if frag is not None else None
        run_type = keyword(glob, "RUN_TYPE") if glob is not None else None
        if run_type is not None and run_type.upper() not in allowed:
            raise ValueError(f"{key} = {self.param[key]!r} sets GLOBAL/RUN_TYPE {run_type}; allowed there: "
                             f"{', '.join(allowed)} (or leave RUN_TYPE out)")
        return run_type.upper() if run_type else None

    def md_steps(self) -> int:
        """MD steps of stage 3: ``MOTION/MD/STEPS`` when the inputs set it (it wins over
        ``md_nstep``, with a warning, as VASP's NSW does in DP-GEN), else ``md_nstep``.

        Raises
        ------
        ValueError
            when neither gives a number of steps, or STEPS is not an integer.
        """
        root = self._base_tree()
        frag = self.stage_fragment("md_incar")
        if frag is not None:
            merge_sections(root, frag)
        md = section_at(root, "MOTION/MD")
        given = keyword(md, "STEPS") if md is not None else None
        nstep = self.param.get("md_nstep")
        if given is None:
            if nstep is None:
                raise ValueError("md_nstep is missing: stage 3 (AIMD) needs the number of MD steps")
            return int(nstep)
        try:
            steps = int(given)
        except ValueError:
            raise ValueError(f"MOTION/MD/STEPS = {given!r} in the CP2K input: not an integer") from None
        if nstep is not None and steps != nstep:
            log.warning("MOTION/MD/STEPS = %d in the CP2K input differs from md_nstep = %d: %d steps are run "
                        "(the input wins, as NSW does in DP-GEN)", steps, nstep, steps)
        return steps

    def check_init_stages(self, stages: list[int]) -> None:
        """Validate the keys of init_bulk's relaxation (1) and AIMD (3) stages among ``stages``.

        Raises
        ------
        ValueError
            naming the key, the value and what is allowed.
        """
        self.check()
        if self.param.get("reuse_relax_chgcar"):
            raise ValueError("reuse_relax_chgcar = true: a VASP option (CHGCAR of stage 1 to stage 3); "
                             "fp_style 'cp2k' has no equivalent: remove it")
        if 1 in stages:
            self._fragment_run_type("relax_incar", RELAX_RUN_TYPES)
        if 3 in stages:
            self._fragment_run_type("md_incar", ("MD",))
            steps = self.md_steps()
            if steps < 0:
                raise ValueError(f"md_nstep = {steps}: must be >= 0")

    def _stage_input(self, frame: dpdata.System, task_dir: Path, key: str, run_type: str,
                     forces: bool) -> InputSection:
        """The single-point input of ``frame``, ``key``'s file merged over it, RUN_TYPE, project
        and per-step prints set (written by the caller)."""
        each = run_type
        self.write_inputs(frame, task_dir)
        path = Path(task_dir) / INPUT_FILE
        root = parse_cp2k_input(path.read_text(), str(path))
        frag = self.stage_fragment(key)
        if frag is not None:
            merge_sections(root, frag)
        glob = root.get_subsection("GLOBAL")
        set_keyword(glob, "RUN_TYPE", run_type)
        delete(glob, "PROJECT_NAME", sections=False)
        set_keyword(glob, "PROJECT", STAGE_PROJECT)
        printing = root.get_subsection("MOTION/PRINT")
        for name in ("TRAJECTORY", "CELL") + (("FORCES",) if forces else ()):
            sec = subsection(printing, name)
            sec.params = "ON"
            delete(sec, "FILENAME")
            if name != "CELL":
                set_keyword(sec, "FORMAT", "XYZ")
            set_keyword(sec, f"EACH/{each}", 1)
        subsection(printing, "RESTART_HISTORY").params = "OFF"
        if forces:  # the stress of every step is read from the output
            set_keyword(root.get_subsection("FORCE_EVAL/PRINT/STRESS_TENSOR"), f"EACH/{each}", 1)
        return root

    def write_relax_inputs(self, frame: dpdata.System, task_dir: Path, relax_dir: Path | None = None) -> list[str]:
        """Write the stage-1 relaxation of ``frame`` (one frame, Å): ``input.inp`` with RUN_TYPE
        CELL_OPT (or GEO_OPT / CELL_OPT from ``relax_incar``).  Returns the files to forward."""
        run_type = self._fragment_run_type("relax_incar", RELAX_RUN_TYPES) or "CELL_OPT"
        root = self._stage_input(frame, task_dir, "relax_incar", run_type, forces=False)
        (Path(task_dir) / INPUT_FILE).write_text(render_cp2k_input(root))
        return [INPUT_FILE]

    def write_md_inputs(self, frame: dpdata.System, task_dir: Path, relax_dir: Path | None = None) -> list[str]:
        """Write the stage-3 AIMD from ``frame``: RUN_TYPE MD, :data:`MD_DEFAULTS` where unset,
        ``STEPS`` = :meth:`md_steps`, positions, forces and cell at every step.  Returns the files to forward."""
        root = self._stage_input(frame, task_dir, "md_incar", "MD", forces=True)
        md = root.get_subsection("MOTION/MD")
        for name, value in MD_DEFAULTS.items():
            if keyword(md, name) is None:
                set_keyword(md, name, value)
        if keyword(md, "ENSEMBLE").upper() == "NVT" and subsection(md, "THERMOSTAT", create=False) is None:
            merge_dict(md, {"THERMOSTAT": {"TYPE": "CSVR", "CSVR": {"TIMECON": 100.0}}}, "MD_DEFAULTS")
        set_keyword(md, "STEPS", self.md_steps())
        (Path(task_dir) / INPUT_FILE).write_text(render_cp2k_input(root))
        return [INPUT_FILE]

    def relax_backward_files(self) -> list[str]:
        """Files a finished relaxation brings back."""
        return [OUTPUT_FILE, f"{STAGE_PROJECT}-pos-1.xyz", f"{STAGE_PROJECT}-1.cell", f"{STAGE_PROJECT}-1.restart"]

    def md_backward_files(self) -> list[str]:
        """Files a finished AIMD brings back."""
        return [OUTPUT_FILE, f"{STAGE_PROJECT}-pos-1.xyz", f"{STAGE_PROJECT}-frc-1.xyz", f"{STAGE_PROJECT}-1.cell"]

    def _finished_output(self, task_dir: Path) -> str:
        text = _output_text(task_dir)
        _require_end(task_dir, text)
        return text

    def read_relaxed(self, task_dir: Path) -> dpdata.System:
        """The last geometry of a finished relaxation (``cp2k-pos-1.xyz``, cell from ``cp2k-1.cell``
        or, for GEO_OPT, the input), in ``type_map`` order.  An optimisation stopped at MAX_ITER
        is used with a warning (DP-GEN takes VASP's CONTCAR likewise).

        Raises
        ------
        FpTaskFailed
            when CP2K did not run to its end or wrote no trajectory.
        """
        task_dir = Path(task_dir)
        text = self._finished_output(task_dir)
        if GEO_OPT_DONE not in text:
            log.warning("%s: the CP2K optimisation did not converge within MAX_ITER; its last geometry is used",
                        task_dir)
        pos = task_dir / f"{STAGE_PROJECT}-pos-1.xyz"
        frames = xyz_frames(pos) if pos.is_file() else []
        if not frames:
            raise FpTaskFailed(f"{task_dir}: no geometry in {pos.name} (MOTION/PRINT/TRAJECTORY off?)")
        cells = cell_rows(task_dir / f"{STAGE_PROJECT}-1.cell")
        cell = cells[max(cells)] if cells else _input_cell(task_dir / INPUT_FILE)
        if cell is None:
            raise FpTaskFailed(f"{task_dir}: no cell in {STAGE_PROJECT}-1.cell nor in {INPUT_FILE}")
        _, names, coords = frames[-1]
        try:
            return labelled_frames(names, self.type_map, cell[None], coords[None])
        except ValueError as err:
            raise FpTaskFailed(f"{task_dir}: {err}") from None

    def read_md(self, task_dir: Path, nsteps: int) -> dpdata.LabeledSystem:
        """Every step of a finished AIMD: steps 0..``nsteps`` (``nsteps`` + 1 frames) from
        ``cp2k-pos-1.xyz`` (Å), ``cp2k-frc-1.xyz`` (Hartree/Bohr -> eV/Å), ``cp2k-1.cell`` (Å),
        and from the output each step's ``ENERGY| Total FORCE_EVAL`` (Hartree -> eV) and
        ``STRESS| Analytical stress tensor [GPa]`` (virial = stress x volume, eV, as
        :meth:`read_label`).  dpdata's ``cp2k/aimd_output`` cannot read CP2K 2023's output (it
        looks for the pre-8 ``INITIAL POTENTIAL ENERGY`` / ``STRESS TENSOR`` layout), hence this
        reader.  Steps whose SCF did not converge are left out, with a warning.

        Raises
        ------
        FpTaskFailed
            when CP2K did not finish, the files hold another number of steps, they disagree
            with each other, no step converged, or a number is not finite.
        """
        task_dir = Path(task_dir)
        text = self._finished_output(task_dir)
        pos_file, frc_file = (task_dir / f"{STAGE_PROJECT}-{k}-1.xyz" for k in ("pos", "frc"))
        pos = xyz_frames(pos_file) if pos_file.is_file() else []
        frc = xyz_frames(frc_file) if frc_file.is_file() else []
        n = len(pos)
        if n != nsteps + 1 or len(frc) != n:
            raise FpTaskFailed(f"{task_dir}: {n} positions and {len(frc)} force frames, expected md_nstep + 1 = "
                               f"{nsteps + 1} (steps 0..{nsteps})")
        energy_lines = list(_ENERGY_LINE.finditer(text))
        stresses = stress_blocks_gpa(text)
        if len(energy_lines) != n or len(stresses) != n:
            raise FpTaskFailed(f"{task_dir}: {len(energy_lines)} energies and {len(stresses)} stress tensors in "
                               f"{OUTPUT_FILE} for {n} MD steps")
        starts = [0] + [m.end() for m in energy_lines[:-1]]
        converged = [SCF_NOT_CONVERGED not in text[a:m.start()] for a, m in zip(starts, energy_lines)]
        names = pos[0][1]
        if any(p[1] != names or f[1] != names for p, f in zip(pos, frc)):
            raise FpTaskFailed(f"{task_dir}: the atoms differ between the frames of {pos_file.name} / {frc_file.name}")
        cells = cell_rows(task_dir / f"{STAGE_PROJECT}-1.cell")
        steps = [p[0] for p in pos]
        if cells and all(s in cells for s in steps):
            cell = np.array([cells[s] for s in steps])
        else:
            fixed = _input_cell(task_dir / INPUT_FILE)
            if fixed is None:
                raise FpTaskFailed(f"{task_dir}: no cell for steps {steps} in {STAGE_PROJECT}-1.cell")
            cell = np.repeat(fixed[None], n, axis=0)
        keep = [i for i in range(n) if converged[i]]
        if len(keep) < n:
            log.warning("%s: SCF not converged at MD step(s) %s: left out", task_dir,
                        [steps[i] for i in range(n) if not converged[i]])
        if not keep:
            raise FpTaskFailed(f"{task_dir}: the SCF converged at no MD step")
        gpa = PressureConversion("eV/angstrom^3", "GPa").value()
        volume = np.abs(np.linalg.det(cell))
        labels = {
            "energies": np.array([float(m.group(1)) for m in energy_lines]) * EnergyConversion("hartree", "eV").value(),
            "forces": np.array([f[2] for f in frc]) * ForceConversion("hartree/bohr", "eV/angstrom").value(),
            "virials": np.array(stresses) * volume[:, None, None] / gpa,
        }
        try:
            system = labelled_frames(names, self.type_map, cell[keep], np.array([p[2] for p in pos])[keep],
                                     {k: v[keep] for k, v in labels.items()})
        except ValueError as err:
            raise FpTaskFailed(f"{task_dir}: {err}") from None
        for key in ("energies", "forces", "virials"):
            if not np.all(np.isfinite(system[key])):
                raise FpTaskFailed(f"{task_dir}: non-finite {key} in the output")
        return system
