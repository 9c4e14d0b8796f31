"""Helpers shared by the DFT fp styles (vasp, abacus, pwscf).

- resolving DP-GEN's ``fp_pp_path`` + ``fp_pp_files`` (a list in ``type_map`` order, or an
  ``{element: file}`` map) into one existing file per element, with messages that name the
  element, the file and the fix;
- reading the element a pseudopotential / orbital file is made for (POTCAR first line and
  ``TITEL``, UPF ``element`` attribute or v1 ``Element`` line, ABACUS orbital ``Element`` line),
  so that ordering mistakes fail at start;
- putting a frame in ``type_map`` order and naming the elements it contains;
- k-point meshes from a spacing (VASP's ``KSPACING`` definition, 2π included, 1/Å);
- reading a finished task's output through dpdata, turning every failure into
  :class:`~.base.FpTaskFailed`;
- :class:`PseudoStyle`, the base class of those styles.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path

import dpdata
import numpy as np
from ase.data import atomic_masses, atomic_numbers
from dpdata.periodic_table import ELEMENTS

from .base import FpStyle, FpTaskFailed, check_finite

_SYMBOL = re.compile(r"([A-Z][a-z]?)")


def _symbol(token: str) -> str | None:
    """The element symbol at the start of ``token`` ('Sn_d' -> 'Sn', 'H.75' -> 'H'), or None."""
    m = _SYMBOL.match(token)
    if not m:
        return None
    # 'Cu' from 'Cu_pv', but a one-letter symbol when the two-letter one is no element ('Hx')
    for cand in (m.group(1), m.group(1)[0]):
        if cand in ELEMENTS:
            return cand
    return None


def pp_path(param: dict, base_dir: Path) -> Path:
    """The folder ``fp_pp_path`` (relative to ``base_dir``; ``base_dir`` itself when unset)."""
    return Path(base_dir) / (param.get("fp_pp_path") or "")


def resolve_files(param: dict, base_dir: Path, key: str = "fp_pp_files", required: bool = True,
                  what: str = "pseudopotential") -> dict[str, Path] | None:
    """One existing file per ``type_map`` element from ``param[key]`` under ``fp_pp_path``.

    ``param[key]`` is a list in ``type_map`` order (DP-GEN) or an ``{element: file}`` map.

    Returns
    -------
    dict
        element -> absolute path, in ``type_map`` order; ``None`` when the key is unset and
        not ``required``.

    Raises
    ------
    ValueError
        key missing (when required), wrong length or type, an element without a file, a
        key that is no ``type_map`` element, or a file that does not exist.
    """
    type_map = list(param["type_map"])
    files = param.get(key)
    if files is None:
        if required:
            raise ValueError(f"{key} is missing: fp_style {param['fp_style']!r} needs one {what} file per "
                             f"type_map element {type_map}, as a list in that order or {{element: file}}, "
                             "found in fp_pp_path")
        return None
    if isinstance(files, list):
        if len(files) != len(type_map):
            raise ValueError(f"{key} = {files}: {len(files)} file(s) for {len(type_map)} type_map elements "
                             f"{type_map}; give one {what} file per element, in type_map order")
        named = dict(zip(type_map, files))
        where = {el: f"{key}[{i}]" for i, el in enumerate(type_map)}
    elif isinstance(files, dict):
        extra = [k for k in files if k not in type_map]
        missing = [el for el in type_map if el not in files]
        if extra or missing:
            raise ValueError(f"{key} = {files}: " + (f"no file for {missing}" if missing else "") +
                             ("; " if extra and missing else "") +
                             (f"{extra} not in type_map = {type_map}" if extra else "") +
                             f"; give one {what} file per type_map element")
        named = {el: files[el] for el in type_map}
        where = {el: f"{key}[{el!r}]" for el in type_map}
    else:
        raise ValueError(f"{key} = {files!r}: expected a list in type_map order or an {{element: file}} map")
    folder = pp_path(param, base_dir)
    out = {}
    for el, name in named.items():
        path = (folder / str(name)).resolve()
        if not path.is_file():
            raise ValueError(f"{where[el]} = {name!r} (the {what} for {el}): no such file {path}; "
                             f"put it in fp_pp_path = {param.get('fp_pp_path')!r} or fix the name")
        out[el] = path
    return out


def check_file_elements(files: dict[str, Path], element_of: Callable[[Path], str | None], param: dict,
                        key: str = "fp_pp_files", what: str = "pseudopotential") -> None:
    """Check that each file is made for the element it is used for.

    ``element_of(path)`` returns the file's element, or ``None`` when the file does not say
    (then the file is not checked).

    Raises
    ------
    ValueError
        naming the entry, the file, both elements, and (when the files are merely out of
        order) the list in ``type_map`` order.
    """
    found = {el: element_of(path) for el, path in files.items()}
    wrong = {el: f for el, f in found.items() if f is not None and f != el}
    if not wrong:
        return
    el, got = next(iter(wrong.items()))
    given = param.get(key)
    entry = f"{key}[{list(files).index(el)}]" if isinstance(given, list) else f"{key}[{el!r}]"
    fix = f"each entry must be the {what} of the type_map element at the same place (type_map = {list(files)})"
    by_element = {f: files[e].name for e, f in found.items() if f is not None}
    if set(by_element) >= set(files):
        fix += f"; reorder: {key} = {[by_element[e] for e in files]}"
    raise ValueError(f"{entry} = {files[el].name!r} ({files[el]}) is a {what} for {got}, but it is used for "
                     f"{el}: {fix}")


def potcar_element(path: Path) -> str:
    """Element of a single-element POTCAR, from its first line and ``TITEL`` (e.g. 'PAW_PBE Cu 22Jun2005').

    Raises
    ------
    ValueError
        if the file is no POTCAR, holds several POTCARs, or its first line and ``TITEL`` disagree.
    """
    text = Path(path).read_text(errors="replace")
    lines = text.splitlines()
    first = lines[0].split() if lines else []
    head = _symbol(first[1] if len(first) > 1 else (first[0] if first else ""))
    titels = re.findall(r"^\s*TITEL\s*=\s*(.*)$", text, flags=re.M)
    if len(titels) > 1:
        elements = [_symbol((t.split() + [""])[1]) for t in titels]
        raise ValueError(f"{path} holds {len(titels)} POTCARs ({elements}); give one POTCAR per element "
                         "in fp_pp_files (they are concatenated per frame)")
    titel = _symbol((titels[0].split() + ["", ""])[1]) if titels else None
    if head is None and titel is None:
        raise ValueError(f"{path}: not a POTCAR (no element in its first line {lines[:1]} and no TITEL)")
    if head and titel and head != titel:
        raise ValueError(f"{path}: first line says {head}, TITEL says {titel}; the file is damaged")
    return titel or head


def upf_element(path: Path) -> str | None:
    """Element of a UPF pseudopotential (v2 ``element="Cu"`` attribute, v1 ``Cu  Element`` line), or None."""
    text = Path(path).read_text(errors="replace")[:200_000]
    m = re.search(r'element\s*=\s*"\s*([A-Za-z]{1,2})\s*"', text) or \
        re.search(r"^\s*([A-Z][a-z]?)\s+Element\b", text, flags=re.M)
    return _symbol(m.group(1).capitalize()) if m else None


def orb_element(path: Path) -> str | None:
    """Element of an ABACUS numerical-orbital file (its ``Element  Cu`` line), or None."""
    m = re.search(r"^\s*Element\s+([A-Z][a-z]?)\b", Path(path).read_text(errors="replace")[:20_000], flags=re.M)
    return _symbol(m.group(1)) if m else None


def frame_in_type_map(frame: dpdata.System, type_map: list[str]) -> tuple[dpdata.System, list[str]]:
    """A copy of ``frame`` with ``atom_names == type_map``, and the elements it contains (type_map order).

    Raises
    ------
    ValueError
        if the frame holds an element that is not in ``type_map``.
    """
    frame = frame.copy()
    extra = [n for n, c in zip(frame["atom_names"], frame["atom_numbs"]) if c > 0 and n not in type_map]
    if extra:
        raise ValueError(f"frame holds {extra}, not in type_map = {type_map}")
    unused = [n for n in frame["atom_names"] if n not in type_map]
    if unused:
        frame = frame.remove_atom_names(unused)
    frame.check_type_map(type_map)
    present = [n for n, c in zip(frame["atom_names"], frame["atom_numbs"]) if c > 0]
    return frame, present


def type_masses(param: dict) -> list[float]:
    """Masses (g/mol) in ``type_map`` order: ``mass_map``, or ASE's when it is 'auto' or absent."""
    masses = param.get("mass_map", "auto")
    if isinstance(masses, list):
        return [float(m) for m in masses]
    return [float(atomic_masses[atomic_numbers[el]]) for el in param["type_map"]]


def kspacing_mesh(cell, kspacing) -> list[int]:
    """Monkhorst-Pack mesh for ``cell`` ((3, 3), Å) and ``kspacing`` (1/Å, one number or three).

    VASP's ``KSPACING`` rule (also DP-GEN's for pwscf): ``n_i = max(1, ceil(2π |b_i| / kspacing_i))``,
    ``b_i`` the reciprocal vectors without 2π.

    Raises
    ------
    ValueError
        if a spacing is not a positive number.
    """
    ks = np.broadcast_to(np.asarray(kspacing, dtype=float), (3,))
    if not np.all(np.isfinite(ks)) or np.any(ks <= 0):
        raise ValueError(f"kspacing = {kspacing}: need positive numbers (1/Å)")
    recip = np.linalg.inv(np.asarray(cell, dtype=float)).T
    return [max(1, int(np.ceil(2 * np.pi * np.linalg.norm(b) / k - 1e-8))) for b, k in zip(recip, ks)]


def read_labeled(task_dir: Path, source, fmt: str, type_map: list[str], **kwargs) -> dpdata.LabeledSystem:
    """Read ``source`` with dpdata's ``fmt`` and return the checked one-frame label.

    Returns
    -------
    dpdata.LabeledSystem
        one frame in ``type_map`` order: energies eV, forces ``(1, n, 3)`` eV/Å, virials ``(1, 3, 3)`` eV.

    Raises
    ------
    FpTaskFailed
        when dpdata cannot read the output, it holds no or several frames, no virial
        (stress not computed), or non-finite numbers.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            system = dpdata.LabeledSystem(source, fmt=fmt, type_map=type_map, **kwargs)
    except Exception as err:  # dpdata raises many kinds on truncated or garbled output
        raise FpTaskFailed(f"{task_dir}: {fmt} output unreadable ({type(err).__name__}: {err})") from err
    return checked_label(system, task_dir)


def checked_label(system: dpdata.LabeledSystem, task_dir: Path) -> dpdata.LabeledSystem:
    """``system`` if it is one frame with a virial and finite numbers (see :func:`~.base.check_finite`).

    Raises
    ------
    FpTaskFailed
        for no or several frames, no virial (stress not computed), non-finite numbers.
    """
    if system.get_nframes() == 1 and "virials" not in system.data:
        raise FpTaskFailed(f"{task_dir}: no stress in the output, so no virial (enable the stress calculation)")
    return check_finite(system, task_dir)


class PseudoStyle(FpStyle):
    """Base of the fp styles that take DP-GEN's ``fp_pp_path`` / ``fp_pp_files``.

    Subclasses implement :meth:`write_frame`; :meth:`write_inputs` hands them the frame in
    ``type_map`` order and the elements it contains.
    """

    #: what ``fp_pp_files`` holds, in messages
    pp_what: str = "pseudopotential"

    def pp_files(self) -> dict[str, Path]:
        """``fp_pp_files`` resolved: element -> existing file, in ``type_map`` order.

        Raises
        ------
        ValueError
            as :func:`resolve_files`.
        """
        return resolve_files(self.param, self.base_dir, what=self.pp_what)

    def check_pp_files(self, element_of: Callable[[Path], str | None]) -> dict[str, Path]:
        """:meth:`pp_files`, each checked to be made for its element by ``element_of``; returned.

        Raises
        ------
        ValueError
            missing file, or a file made for another element (see :func:`check_file_elements`).
        """
        files = self.pp_files()
        check_file_elements(files, element_of, self.param, what=self.pp_what)
        return files

    def write_inputs(self, frame: dpdata.System, task_dir: Path) -> list[str]:
        """Write the inputs labelling ``frame`` (one frame, Å) into ``task_dir``: atoms grouped in
        ``type_map`` order, elements absent from the frame left out.

        Returns the file names to forward (links to pseudopotentials included).

        Raises
        ------
        ValueError
            if the frame holds an element outside ``type_map``.
        """
        frame, present = frame_in_type_map(frame, self.type_map)
        return self.write_frame(frame, present, Path(task_dir))

    def write_frame(self, frame: dpdata.System, present: list[str], task_dir: Path) -> list[str]:
        """Write the inputs of ``frame`` (``atom_names == type_map``; ``present``: its elements)."""
        raise NotImplementedError
