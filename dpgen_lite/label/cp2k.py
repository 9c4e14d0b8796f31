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
   (relative to ``base_dir``), or, without one, an input generated from the defaults above;
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

The task runs ``cp2k.psmp -i input.inp`` with all output in the file ``output``; the label is
read by ``dpdata.LabeledSystem(output, fmt="cp2k/output")`` (energy Hartree -> eV, forces
Hartree/Bohr -> eV/Å).  dpdata 1.1 reads the stress tensor only in CP2K's old layout
(``STRESS TENSOR [GPa]``); CP2K 2023 prints ``STRESS| Analytical stress tensor [GPa]``, so for
such outputs the virial is taken from that block with dpdata's own conversion
(virial = stress x volume, GPa -> eV/Å^3; checked against finite differences of the energy).
CP2K prints the cell with 3 decimals only, so the exact cell is taken from ``input.inp``
(after checking that it agrees with the output).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dpdata
import numpy as np
from dpdata.periodic_table import ELEMENTS
from dpdata.unit import PressureConversion

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

# --------------------------------------------------------------------------------------
# A small CP2K input tree: parse, merge a nested dict, write.
# --------------------------------------------------------------------------------------


@dataclass
class Keyword:
    """One keyword line ``NAME value`` (in ``&COORD`` a data line: name = kind); case kept."""

    name: str
    value: str = ""


@dataclass
class Raw:
    """A line kept verbatim (preprocessor directives such as ``@SET``, ``@INCLUDE``)."""

    text: str


@dataclass
class Section:
    """A CP2K input section ``&NAME param`` ... ``&END NAME`` holding keywords, sections, raw lines."""

    name: str
    param: str = ""
    items: list[Keyword | Section | Raw] = field(default_factory=list)

    def sections(self, name: str) -> list[Section]:
        """All direct subsections called ``name`` (case-insensitive), in order."""
        return [s for s in self.items if isinstance(s, Section) and s.name == name.upper()]

    def section(self, name: str, param: str | None = None, create: bool = True) -> Section | None:
        """The first subsection ``name`` (with parameter ``param`` if given), created if missing.

        Returns ``None`` only when it is missing and ``create`` is false.
        """
        for sec in self.sections(name):
            if param is None or sec.param.upper() == str(param).upper():
                return sec
        if not create:
            return None
        sec = Section(name.upper(), "" if param is None else str(param))
        self.items.append(sec)
        return sec

    def keyword(self, name: str) -> Keyword | None:
        """The first keyword ``name`` (case-insensitive), or ``None``."""
        for kw in self.items:
            if isinstance(kw, Keyword) and kw.name.upper() == name.upper():
                return kw
        return None

    def set(self, name: str, value: Any) -> None:
        """Set keyword ``name`` to ``value`` (replacing every earlier occurrence)."""
        value = _format_value(value)
        name = name.upper()
        found = False
        new_items: list[Keyword | Section | Raw] = []
        for item in self.items:
            if isinstance(item, Keyword) and item.name.upper() == name:
                if not found:
                    new_items.append(Keyword(name, value))
                    found = True
                continue
            new_items.append(item)
        if not found:
            new_items.append(Keyword(name, value))
        self.items = new_items

    def remove(self, name: str) -> None:
        """Remove every keyword and subsection called ``name``."""
        name = name.upper()
        self.items = [
            it for it in self.items
            if not (isinstance(it, (Keyword, Section)) and it.name.upper() == name)
        ]

    def render(self, indent: int = 0) -> list[str]:
        """The section's lines, indented by two spaces per level."""
        pad = "  " * indent
        head = f"{pad}&{self.name}" + (f" {self.param}" if self.param else "")
        lines = [head]
        lines += _render_items(self.items, indent + 1)
        lines.append(f"{pad}&END {self.name}")
        return lines


def _render_items(items, indent: int) -> list[str]:
    pad = "  " * indent
    lines: list[str] = []
    for it in items:
        if isinstance(it, Section):
            lines += it.render(indent)
        elif isinstance(it, Keyword):
            lines.append(f"{pad}{it.name} {it.value}".rstrip())
        else:
            lines.append(it.text)
    return lines


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return ".TRUE." if value else ".FALSE."
    if isinstance(value, (list, tuple)):
        return " ".join(_format_value(v) for v in value)
    return str(value)


def parse_cp2k_input(text: str, source: str = "<input>") -> Section:
    """Parse CP2K input text into a tree whose root (name ``""``) holds the top-level sections.

    Comments (``#``, ``!``) are dropped, ``\\`` continuation lines joined, preprocessor lines
    (``@SET``, ``@INCLUDE``, ``@IF``...) kept verbatim.  Section names are upper-cased; keyword
    names (in ``&COORD`` the kind names), values and section parameters are kept as written
    and matched case-insensitively.

    Raises
    ------
    ValueError
        on an ``&END`` without a section, a mismatched ``&END NAME`` or an unclosed section.
    """
    root = Section("")
    stack = [root]
    logical: list[tuple[int, str]] = []
    buf, start = "", 0
    for lineno, line in enumerate(text.splitlines(), 1):
        if not buf:
            start = lineno
        stripped = line.rstrip()
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        logical.append((start, buf + line))
        buf = ""
    if buf:
        logical.append((start, buf))
    for lineno, line in logical:
        s = line.strip()
        if not s or s[0] in "#!":
            continue
        if s.startswith("@"):
            stack[-1].items.append(Raw(s))
            continue
        s = re.split(r"\s[#!]", s, maxsplit=1)[0].strip()
        if s.startswith("&"):
            head, _, rest = s[1:].partition(" ")
            head = head.upper()
            if head == "END":
                name = rest.strip().upper()
                if len(stack) == 1:
                    raise ValueError(f"{source}:{lineno}: '&END {name}' without an open section")
                if name and name != stack[-1].name:
                    raise ValueError(
                        f"{source}:{lineno}: '&END {name}' closes section &{stack[-1].name}"
                    )
                stack.pop()
            else:
                sec = Section(head, rest.strip())
                stack[-1].items.append(sec)
                stack.append(sec)
            continue
        name, _, value = s.partition(" ")
        stack[-1].items.append(Keyword(name, value.strip()))
    if len(stack) > 1:
        raise ValueError(f"{source}: section &{stack[-1].name} is never closed (&END missing)")
    return root


def render_cp2k_input(root: Section) -> str:
    """The text of a tree made by :func:`parse_cp2k_input` or :func:`merge_dict`."""
    return "\n".join(_render_items(root.items, 0)) + "\n"


#: sections told apart by their parameter (``&KIND Al``, ``&KIND Mg``); any other section
#: named in a dict is the first one of that name, its parameter replaced
KEYED_SECTIONS = {"KIND"}


def _merge_target(section: Section, key: str, param: Any) -> Section:
    if param is None:
        return section.section(key)
    param = _format_value(param)
    same = section.section(key, param, create=False)
    if same is not None:
        return same
    if key.upper() not in KEYED_SECTIONS:
        first = section.section(key, create=False)
        if first is not None:
            first.param = param
            return first
    return section.section(key, param)


def merge_dict(section: Section, params: dict, where: str = "user_fp_params") -> None:
    """Merge a DP-GEN style nested dict into ``section`` in place.

    A dict value is a subsection (``"_"`` its parameter), a list of dicts repeated subsections,
    a dict whose ``"_"`` is a list DP-GEN's compact form of repeated subsections (list-valued
    keywords are zipped with it), ``None`` removes the keyword or subsection, anything else
    sets a keyword (lists joined by spaces, booleans as ``.TRUE.``/``.FALSE.``).  ``KIND``
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
            section.param = _format_value(value)
        elif isinstance(key, str) and key.startswith("@"):
            section.items.append(Raw(f"{key.upper()} {_format_value(value)}".rstrip()))
        elif value is None:
            section.remove(key)
        elif isinstance(value, dict) and isinstance(value.get("_"), list):
            params_list = value["_"]
            for name, v in value.items():
                if isinstance(v, list) and len(v) != len(params_list):
                    raise ValueError(
                        f"{path}.{name} has {len(v)} entries but {path}._ has {len(params_list)}; "
                        "in the compact form every list must have one entry per section"
                    )
            for i, p in enumerate(params_list):
                sub = {k: (v[i] if isinstance(v, list) else v) for k, v in value.items() if k != "_"}
                merge_dict(section.section(key, p), sub, f"{path}[{i}]")
        elif isinstance(value, dict):
            sub = _merge_target(section, key, value.get("_"))
            merge_dict(sub, {k: v for k, v in value.items() if k != "_"}, path)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            existing = section.sections(key)
            for i, v in enumerate(value):
                if "_" in v:  # matched by parameter
                    sub = section.section(key, _format_value(v["_"]))
                elif i < len(existing):  # the i-th section of that name
                    sub = existing[i]
                else:
                    sub = Section(key.upper())
                    section.items.append(sub)
                merge_dict(sub, {k: w for k, w in v.items() if k != "_"}, f"{path}[{i}]")
        else:
            section.set(key, value)


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


def _stress_gpa(text: str) -> np.ndarray | None:
    """The last ``STRESS| Analytical/Numerical stress tensor [GPa]`` block of CP2K >= 8, (3, 3) GPa."""
    lines = text.splitlines()
    heads = [
        i for i, ln in enumerate(lines)
        if re.match(r"^\s*STRESS\|\s+(Analytical|Numerical) stress tensor \[GPa\]", ln)
    ]
    if not heads:
        return None
    rows = []
    for ln in lines[heads[-1] + 2 : heads[-1] + 5]:
        parts = ln.split()
        if len(parts) != 5 or parts[0] != "STRESS|" or parts[1] not in ("x", "y", "z"):
            return None
        rows.append([float(v) for v in parts[2:5]])
    return np.array(rows)


def _smearing_on(scf: Section) -> bool:
    """Whether an ``&SCF`` section switches Fermi-level smearing on (``&SMEAR`` / ``&SMEAR ON``)."""
    smear = scf.section("SMEAR", create=False)
    return smear is not None and smear.param.strip().upper() in ("", "ON", "T", "TRUE", ".TRUE.", "YES")


def _input_cell(path: Path) -> np.ndarray | None:
    """The (3, 3) cell in Å of the ``&CELL`` A/B/C that :meth:`Cp2kStyle.write_inputs` wrote, or None."""
    if not path.is_file():
        return None
    try:
        root = parse_cp2k_input(path.read_text(), str(path))
        cell = root.sections("FORCE_EVAL")[0].section("SUBSYS").section("CELL", create=False)
        rows = []
        for label in "ABC":
            parts = cell.keyword(label).value.split()
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


@register
class Cp2kStyle(FpStyle):
    """Label with CP2K: one ENERGY_FORCE run per frame, read back with dpdata ``cp2k/output``.

    See the module docstring for the ``param.json`` keys and how ``input.inp`` is built.
    """

    name = "cp2k"

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

    def _fp_overlay(self, explicit_only: bool) -> dict:
        """fp_params as a nested CP2K dict (only the keys given when ``explicit_only``)."""
        given = {k: v for k, v in self.fp.items() if v is not None}

        def want(key: str) -> bool:
            return key in given or not explicit_only

        dft: dict[str, Any] = {}
        if want("basis_set_file"):
            dft["BASIS_SET_FILE_NAME"] = self._opt("basis_set_file")
        if want("potential_file"):
            dft["POTENTIAL_FILE_NAME"] = self._opt("potential_file")
        mgrid = {}
        if want("cutoff"):
            mgrid["CUTOFF"] = self._opt("cutoff")
        if want("rel_cutoff"):
            mgrid["REL_CUTOFF"] = self._opt("rel_cutoff")
        if mgrid:
            dft["MGRID"] = mgrid
        if "kpoints" in given:
            kp = [int(k) for k in given["kpoints"]]
            dft["KPOINTS"] = (
                None if kp == [1, 1, 1] else {"SCHEME": ["MONKHORST-PACK", *kp]}
            )
        scf: dict[str, Any] = {}
        if not explicit_only:
            scf.update({
                "SCF_GUESS": "ATOMIC",
                "DIAGONALIZATION": {"_": "ON", "ALGORITHM": "STANDARD"},
                "MIXING": {"_": "T", "METHOD": "BROYDEN_MIXING", "ALPHA": 0.3, "NBROYDEN": 8},
            })
        if want("eps_scf"):
            scf["EPS_SCF"] = self._opt("eps_scf")
        if want("max_scf"):
            scf["MAX_SCF"] = self._opt("max_scf")
        if "smearing_temperature" in self.fp or not explicit_only:
            temp = self.fp.get("smearing_temperature", FP_PARAMS_DEFAULTS["smearing_temperature"])
            scf["SMEAR"] = None if not temp else {
                "_": "ON",
                "METHOD": "FERMI_DIRAC",
                "ELECTRONIC_TEMPERATURE": f"[K] {float(temp)}",
            }
        if scf:
            dft["SCF"] = scf
        if want("xc"):
            dft["XC"] = {"XC_FUNCTIONAL": {"_": str(self._opt("xc")).upper()}}
        if not explicit_only:
            dft["QS"] = {"EPS_DEFAULT": 1.0e-12}
        force_eval: dict[str, Any] = {"DFT": dft} if dft else {}
        if not explicit_only:
            force_eval = {"METHOD": "QS", "STRESS_TENSOR": "ANALYTICAL", **force_eval}
        out: dict[str, Any] = {}
        if not explicit_only:
            out["GLOBAL"] = {"PROJECT": "cp2k"}
        if force_eval:
            out["FORCE_EVAL"] = force_eval
        return out

    def _base_tree(self) -> Section:
        """The input without the frame: template or defaults, fp_params, user_fp_params, enforced prints.

        Raises
        ------
        ValueError
            for an unreadable template, an unparsable one, or not exactly one FORCE_EVAL.
        """
        tpl = self._template_path()
        if tpl is None:
            root = Section("")
            merge_dict(root, self._fp_overlay(explicit_only=False), "fp_params")
        else:
            try:
                text = tpl.read_text()
            except OSError as err:
                raise ValueError(f"fp_template = {str(tpl)!r} cannot be read ({err})") from err
            root = parse_cp2k_input(text, str(tpl))
            merge_dict(root, self._fp_overlay(explicit_only=True), "fp_params")
        user = self.param.get("user_fp_params")
        if user:
            merge_dict(root, user, "user_fp_params")

        glob = root.section("GLOBAL")
        glob.set("RUN_TYPE", "ENERGY_FORCE")
        glob.set("PRINT_LEVEL", "MEDIUM")
        fes = root.sections("FORCE_EVAL")
        if len(fes) != 1:
            raise ValueError(
                f"the CP2K input has {len(fes)} &FORCE_EVAL sections; the cp2k fp style needs exactly one"
            )
        fe = fes[0]
        if fe.keyword("METHOD") is None:
            fe.set("METHOD", "QS")
        stress = fe.keyword("STRESS_TENSOR")
        if stress is None or stress.value.upper() != "NUMERICAL":
            fe.set("STRESS_TENSOR", "ANALYTICAL")
        prt = fe.section("PRINT")
        for name in ("FORCES", "STRESS_TENSOR"):
            sec = prt.section(name)
            sec.param = "ON"
            sec.remove("FILENAME")
        subsys = fe.section("SUBSYS")
        topo = subsys.section("TOPOLOGY", create=False)
        if topo is not None:
            for kw in ("COORD_FILE_NAME", "COORD_FILE_FORMAT", "MULTIPLE_UNIT_CELL"):
                topo.remove(kw)
        return root

    def _kind_sections(self, root: Section, elements: list[str]) -> dict[str, Section]:
        """The KIND section for each element, added from fp_params where the input has none."""
        subsys = root.sections("FORCE_EVAL")[0].section("SUBSYS")
        kinds = {}
        for el in elements:
            kind = subsys.section("KIND", el, create=False)
            if kind is None:
                kind = subsys.section("KIND", el)
                kind.set("BASIS_SET", self._per_element("basis_set", el))
                kind.set("POTENTIAL", self._per_element("potential", el))
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
        for key in ("cutoff", "rel_cutoff", "eps_scf"):
            v = self.fp.get(key)
            if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0):
                raise ValueError(f"fp_params.{key} = {v!r}: must be a positive number")
        v = self.fp.get("max_scf")
        if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            raise ValueError(f"fp_params.max_scf = {v!r}: must be an integer >= 1")
        v = self.fp.get("added_mos")
        if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and v >= -1):
            raise ValueError(f"fp_params.added_mos = {v!r}: must be an integer >= -1 (-1: all)")
        v = self.fp.get("kpoints")
        if v is not None and not (
            isinstance(v, (list, tuple)) and len(v) == 3
            and all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in v)
        ):
            raise ValueError(
                f"fp_params.kpoints = {v!r}: must be three integers >= 1 (a Monkhorst-Pack mesh), "
                "or null for the Gamma point only"
            )
        v = self.fp.get("smearing_temperature")
        if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0):
            raise ValueError(
                f"fp_params.smearing_temperature = {v!r}: must be a temperature in K, "
                "or 0 / null for no smearing"
            )
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
        dft = root.sections("FORCE_EVAL")[0].section("DFT")
        dirs = self._data_dirs()
        files = {}
        for kw, what in (("BASIS_SET_FILE_NAME", "basis_set_file"), ("POTENTIAL_FILE_NAME", "potential_file")):
            names = [it.value for it in dft.items if isinstance(it, Keyword) and it.name.upper() == kw]
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
            element = kind.keyword("ELEMENT").value if kind.keyword("ELEMENT") else el
            if element.capitalize() not in ELEMENTS:
                raise ValueError(
                    f"type_map entry {el!r} is not an element symbol; give its KIND section an "
                    "ELEMENT keyword (in user_fp_params or the template)"
                )
            for kw, key, fkw in (
                ("BASIS_SET", "basis_set", "BASIS_SET_FILE_NAME"),
                ("POTENTIAL", "potential", "POTENTIAL_FILE_NAME"),
            ):
                entry = kind.keyword(kw)
                if entry is None:
                    raise ValueError(f"KIND {el} has no {kw}; set fp_params.{key}")
                name = entry.value.split()[-1] if entry.value.split() else ""
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
        subsys = root.sections("FORCE_EVAL")[0].section("SUBSYS")
        old_cell = subsys.section("CELL", create=False)
        periodic = old_cell.keyword("PERIODIC") if old_cell is not None else None
        subsys.remove("CELL")
        subsys.remove("COORD")
        cell = Section("CELL")
        for label, vec in zip("ABC", frame["cells"][0]):
            cell.items.append(Keyword(label, "[angstrom] " + " ".join(f"{x:.10f}" for x in vec)))
        if periodic is not None:
            cell.items.append(periodic)
        coord = Section("COORD", items=[Keyword("UNIT", "angstrom"), Keyword("SCALED", ".FALSE.")])
        for name, xyz in zip(names, frame["coords"][0]):
            coord.items.append(Keyword(name, " ".join(f"{x:.10f}" for x in xyz)))
        subsys.items[0:0] = [cell, coord]
        self._kind_sections(root, present)
        scf = root.sections("FORCE_EVAL")[0].section("DFT").section("SCF")
        added = self.fp.get("added_mos")
        if added is None and scf.keyword("ADDED_MOS") is None and _smearing_on(scf):
            added = max(10, 2 * len(names))  # smearing needs empty states
        if added is not None:
            scf.set("ADDED_MOS", added)
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
        out = task_dir / OUTPUT_FILE
        if not out.is_file():
            raise FpTaskFailed(f"{task_dir}: no '{OUTPUT_FILE}' file (CP2K did not run; check the command)")
        text = out.read_text(errors="replace")
        if ABORT_MARKER in text:
            raise FpTaskFailed(f"{task_dir}: CP2K aborted: {_abort_message(text)}")
        if SCF_NOT_CONVERGED in text:
            raise FpTaskFailed(
                f"{task_dir}: CP2K printed '{SCF_NOT_CONVERGED}' (raise MAX_SCF, lower the mixing "
                "ALPHA or add smearing)"
            )
        if END_MARKER not in text:
            raise FpTaskFailed(f"{task_dir}: CP2K did not finish ('{END_MARKER}' missing: killed or crashed)")
        if SCF_CONVERGED not in text:
            raise FpTaskFailed(f"{task_dir}: no '{SCF_CONVERGED}' in the output")
        try:
            system = dpdata.LabeledSystem(str(out), fmt="cp2k/output", type_map=self.type_map)
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
