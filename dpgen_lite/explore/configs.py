"""Starting configurations of the exploration: ``sys_configs`` globs, read in any dpdata format.

``sys_configs`` is a list of systems, each a list of glob patterns (relative to
``sys_configs_prefix``); ``sys_format`` is any format dpdata reads (``vasp/poscar`` by
default).  Formats without element names (``lammps/lmp``: ``Type_1``, ``Type_2`` ...) take
them from ``type_map``; a POSCAR must name its elements (VASP 5's line above the counts).
With ``shuffle_poscar`` (DP-GEN's key) the atom order of each MD task's configuration is
shuffled (seeded), as DP-GEN does to its POSCARs.
"""

from __future__ import annotations

import glob
import re
from pathlib import Path

import dpdata
import numpy as np

from ..params import ParamError, require

#: dpdata formats of a POSCAR
VASP_FORMATS = ("vasp/poscar", "vasp/contcar", "poscar", "contcar")


def resolve_configs(param: dict, base_dir: Path) -> list[list[Path]]:
    """Expand ``sys_configs`` into sorted files per system.

    Raises
    ------
    ParamError
        for a 1-D list, or a pattern that matches no file (reported as missing files).
    """
    out = []
    prefix = Path(base_dir) / param["sys_configs_prefix"]
    for i, patterns in enumerate(param["sys_configs"]):
        require(isinstance(patterns, list), f"sys_configs[{i}] = {patterns!r}: each system is a list "
                f"of glob patterns; write [[{patterns!r}]] instead of [{patterns!r}]")
        files = sorted({Path(f) for p in patterns for f in glob.glob(str(prefix / p))})
        require(bool(files), f"sys_configs[{i}] = {patterns!r}: missing files: no file matches under {prefix}")
        out.append(files)
    return out


def check_element_line(path: Path, param: dict) -> None:
    """A POSCAR (``sys_format`` a VASP format) names its elements: VASP 5's line of names above
    the atom counts, which VASP 4's lacks (dpdata reads no species from the comment line).

    Raises
    ------
    ParamError
        naming the file and the line to add.
    """
    if param["sys_format"] not in VASP_FORMATS:
        return
    lines = Path(path).read_text(errors="replace").splitlines()
    words = lines[5].split() if len(lines) > 5 else []
    require(not (words and all(w.isdigit() for w in words)), f"sys_configs file {path}: a VASP 4 POSCAR: line 6 "
            f"holds the atom counts {' '.join(words)!r} with no line of element names above it; insert that line "
            f"(VASP 5 format): the element of each count, in order, named as in type_map = {param['type_map']}")


def read_config(path: Path, param: dict) -> dpdata.System:
    """One starting configuration in ``param['sys_format']``, atom types in ``type_map`` order.

    Raises
    ------
    ParamError
        if dpdata cannot read it (a VASP 4 POSCAR: :func:`check_element_line`), or it holds an
        element missing from ``type_map``.
    """
    fmt, type_map = param["sys_format"], param["type_map"]
    try:
        check_element_line(path, param)
        system = dpdata.System(str(path), fmt=fmt)
        names = system["atom_names"]
        if all(re.fullmatch(r"Type_\d+", n) for n in names):  # a format without element names
            require(len(names) <= len(type_map), f"{path} ({fmt}): {len(names)} atom types, but type_map = "
                    f"{type_map} names only {len(type_map)}")
            return dpdata.System(str(path), fmt=fmt, type_map=type_map)
    except ParamError:
        raise
    except Exception as err:  # dpdata raises many kinds for unreadable files
        raise ParamError(f"sys_configs file {path}: not readable as sys_format = {fmt!r} "
                         f"({type(err).__name__}: {err}); set sys_format to the file's dpdata format") from None
    missing = [n for n, c in zip(names, system["atom_numbs"]) if c > 0 and n not in type_map]
    require(not missing, f"sys_configs file {path}: element(s) {missing} are not in type_map = {type_map}; "
            "add them to type_map (and mass_map)")
    return dpdata.System(str(path), fmt=fmt, type_map=type_map)


def shuffled(system: dpdata.System, seed: list[int]) -> dpdata.System:
    """``system`` (one frame) with its atoms in a random order (seeded), types following the atoms."""
    perm = np.random.default_rng(seed).permutation(system.get_natoms())
    out = system.copy()
    out.data["coords"] = system["coords"][:, perm]
    out.data["atom_types"] = system["atom_types"][perm]
    return out


def check_configs(param: dict, base_dir: Path) -> None:
    """Every configuration of ``sys_configs`` exists, is readable in ``sys_format`` and has only
    ``type_map`` elements.

    Raises
    ------
    ParamError
        for the first problem.
    """
    from dpdata.format import Format
    fmt = param["sys_format"]
    require(fmt in Format.get_formats(), f"sys_format = {fmt!r}: not a dpdata format; e.g. vasp/poscar, "
            "lammps/lmp, abacus/stru, gromacs/gro")
    for i, files in enumerate(resolve_configs(param, base_dir)):
        for f in files:
            try:
                read_config(f, param)
            except ParamError as err:
                raise ParamError(f"sys_configs[{i}]: {err}") from None
