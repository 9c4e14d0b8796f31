"""Checks across keys and input files of ``param.json``, run at start (``dpgen run``, ``dpgen check``).

Each check raises :class:`.params.ParamError` naming the key, the value, what is wrong and
the fix; :func:`.schema.check_run_param` collects them with the other checks.

* :func:`check_mass_map`: ``mass_map`` (g/mol) in ``type_map``'s order;
* :func:`check_sel`: the descriptor's ``sel`` holds the neighbours, within ``rcut`` (Å), of the
  densest starting configuration (init data and ``sys_configs``), counted by deepmd-kit's
  own neighbour statistics;
* :func:`check_training_template`: ``default_training_param`` has the sections that
  dpgen_lite and deepmd-kit need.

Files that are missing or unreadable are not reported here: :func:`.train.data.check_init_data`
and :func:`.explore.configs.check_configs` do it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .explore.configs import read_config, resolve_configs
from .params import ParamError, require
from .train.data import init_systems, load_system

log = logging.getLogger("dpgen_lite")

#: g/mol: a mass this close to an element's is that element's (integer masses included, as
#: DP-GEN's examples write them: Cu 64, Cl 35)
MASS_TOL = 0.5
#: descriptors whose ``sel`` counts the neighbours of all types together (a list: its sum counts)
MIXED_SEL = {"se_atten", "dpa1", "se_atten_v2", "se_e3_tebd", "dpa4", "DPA4", "SeZM", "sezm", "dpa4c", "DPA4C"}
DESCRIPTOR = "default_training_param.model.descriptor"
EXAMPLE_LOSS = ('{"type": "ener", "start_pref_e": 0.02, "limit_pref_e": 1, "start_pref_f": 1000, '
                '"limit_pref_f": 1, "start_pref_v": 0, "limit_pref_v": 0}')


# ---------------------------------------------------------------- mass_map

def element_mass(name: str) -> float | None:
    """ASE's standard atomic mass (g/mol) of element ``name``; None if ``name`` is no element."""
    import ase.data
    z = ase.data.atomic_numbers.get(name)
    return float(ase.data.atomic_masses[z]) if z else None  # z = 0: ASE's dummy 'X'


def check_mass_map(param: dict) -> None:
    """``mass_map`` (g/mol) follows ``type_map``'s order, unless ``mass_map_check`` is false.

    A mass more than :data:`MASS_TOL` from its own element's but within it of another
    ``type_map`` element's is taken for a swap.  A mass far from every ``type_map`` element
    (an isotope such as D = 2.014, a coarse-grained bead) is only logged as a warning.
    Type names that are not elements, and ``mass_map = "auto"``, are not checked.

    Raises
    ------
    ParamError
        for a mass that is not a positive number, or a swapped mass (naming both lists and
        the fix: reorder, "auto", or ``mass_map_check = false``).
    """
    type_map, mass_map = param["type_map"], param["mass_map"]
    if not param["mass_map_check"] or not isinstance(mass_map, list) or len(mass_map) != len(type_map):
        return  # "auto", or a length the length check reports
    for i, m in enumerate(mass_map):
        require(isinstance(m, (int, float)) and not isinstance(m, bool) and m > 0,
                f"mass_map = {mass_map}: mass_map[{i}] = {m!r} is not a positive number (g/mol)")
    masses = {n: element_mass(n) for n in type_map}
    for i, (name, m) in enumerate(zip(type_map, mass_map)):
        own = masses[name]
        if own is None or abs(m - own) <= MASS_TOL:
            continue
        other = [n for n, mn in masses.items() if n != name and mn is not None and abs(m - mn) <= MASS_TOL]
        if other:
            standard = [round(masses[n], 3) if masses[n] else "?" for n in type_map]
            raise ParamError(f"mass_map = {mass_map}: mass_map[{i}] = {m} is the mass of {other[0]}, not of "
                             f"type_map[{i}] = {name!r} ({own:.3f} g/mol); type_map = {type_map}: give the masses "
                             f"in type_map's order (e.g. {standard}) or mass_map = \"auto\"; if the masses are "
                             "intended, set mass_map_check = false")
        log.warning("mass_map[%d] = %s differs from the mass of %s (%.3f g/mol) by more than %s g/mol "
                    "(an isotope, a coarse-grained type?): used as given", i, m, name, own, MASS_TOL)


# ---------------------------------------------------------------- sel

def descriptors(template: dict) -> list[tuple[str, dict]]:
    """``(key path, descriptor)`` of the template's descriptor, or of each one of a hybrid."""
    desc = (template.get("model") or {}).get("descriptor")
    if not isinstance(desc, dict):
        return []
    if desc.get("type") == "hybrid":
        return [(f"{DESCRIPTOR}.list[{k}]", d) for k, d in enumerate(desc.get("list") or []) if isinstance(d, dict)]
    return [(DESCRIPTOR, desc)]


def configurations(param: dict, base_dir: Path) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]]:
    """Every readable starting configuration, one frame at a time, as ``(name, coords, types, cell)``.

    ``coords`` (natoms, 3) and ``cell`` (3, 3, None without periodicity) in Å; ``types``
    (natoms,) index ``type_map``, -1 for an element outside it.  The frames are those of
    the init data systems, then of the ``sys_configs`` files; missing and unreadable ones
    are skipped (other checks report them).
    """
    try:
        systems = [(f"init_data_sys[{i}] ({s})", load_system(s)) for i, s in init_systems(param, base_dir)]
    except ParamError:
        systems = []
    try:
        files = resolve_configs(param, base_dir)
    except ParamError:
        files = []
    for i, group in enumerate(files):
        for path in group:
            try:
                systems.append((f"sys_configs[{i}] ({path})", read_config(path, param)))
            except ParamError:
                continue
    index = {n: k for k, n in enumerate(param["type_map"])}
    for name, system in systems:
        types = np.array([index.get(n, -1) for n in system["atom_names"]])[system["atom_types"]]
        for f in range(system.get_nframes()):
            where = f"{name}, frame {f}" if system.get_nframes() > 1 else name
            yield where, system["coords"][f], types, None if system.nopbc else system["cells"][f]


def max_neighbours(frames: list, ntypes: int, rcut: float, mixed: bool) -> tuple[np.ndarray, list[str]]:
    """Most neighbours of one atom within ``rcut`` (Å) over ``frames`` (:func:`configurations`),
    per neighbour type (shape (ntypes,)) or of all types together (``mixed``, shape (1,)),
    counted by deepmd-kit's ``NeighborStatOP``; with the frame where each maximum occurs.
    """
    from deepmd.dpmodel.utils.neighbor_stat import NeighborStatOP
    op = NeighborStatOP(ntypes, rcut, mixed)
    best, where = np.zeros(1 if mixed else ntypes, dtype=int), [""] * (1 if mixed else ntypes)
    for name, coords, types, cell in frames:  # one frame per call: memory ~ natoms**2 * ghost copies
        counts = op.call(coords[None], types[None], None if cell is None else cell.reshape(1, 9))[1][0]
        for t in np.flatnonzero(counts > best):
            best[t], where[t] = counts[t], name
    return best, where


def check_descriptor_sel(key: str, desc: dict, frames: list, type_map: list[str]) -> None:
    """One descriptor's ``sel`` against the neighbour counts of ``frames`` within its ``rcut`` (Å).

    A list ``sel`` bounds each neighbour type (``sel[i]`` = 0: type excluded, not checked);
    an int, or a list for the descriptors of :data:`MIXED_SEL`, bounds all types together.
    ``"auto"`` / ``"auto:factor"`` (deepmd-kit computes it), a missing ``sel`` or ``rcut`` are
    not checked.

    Raises
    ------
    ParamError
        if a per-type ``sel`` has not one entry per type, or ``sel`` is below the counts:
        naming the densest configuration, the counts and the ``sel`` to set.
    """
    sel, rcut = desc.get("sel"), desc.get("rcut")
    is_int = isinstance(sel, int) and not isinstance(sel, bool)
    if not (is_int or isinstance(sel, list) and all(isinstance(s, int) for s in sel)) \
            or not isinstance(rcut, (int, float)) or not frames:
        return
    mixed = is_int or desc.get("type") in MIXED_SEL
    if not mixed and len(sel) != len(type_map):
        raise ParamError(f"{key}.sel = {sel}: {len(sel)} entries for the {len(type_map)} types of type_map = "
                         f"{type_map}; give one per type (or \"auto\")")
    counts, where = max_neighbours(frames, len(type_map), float(rcut), mixed)
    have = [sel if is_int else sum(sel)] if mixed else sel
    short = [t for t, (s, c) in enumerate(zip(have, counts)) if s < c and (mixed or s > 0)]
    if not short:
        return
    need = [max(s, int(c)) if s or mixed else 0 for s, c in zip(have, counts)]
    margin = [4 * math.ceil(1.1 * n / 4) for n in need]  # deepmd-kit's "auto": 1.1 x, a multiple of 4
    fix = f'set sel >= {need[0] if mixed else need}, e.g. {margin[0] if mixed else margin} for a margin (or "auto")'
    if mixed:
        raise ParamError(f"{key}.sel = {sel}: within rcut = {rcut} Å, the densest configuration ({where[0]}) has "
                         f"{counts[0]} neighbours (all types); {fix}")
    densest = "; ".join(f"{type_map[t]}: {where[t]}" for t in short)
    raise ParamError(f"{key}.sel = {sel}: within rcut = {rcut} Å, the densest configurations have "
                     f"{[int(c) for c in counts]} neighbours of the types {type_map} ({densest}); {fix}")


def check_sel(param: dict, base_dir: Path) -> None:
    """Every descriptor's ``sel`` (a hybrid's included) against the starting configurations:
    :func:`check_descriptor_sel` on :func:`configurations`.

    Raises
    ------
    ParamError
        for the first descriptor whose ``sel`` is too small.
    """
    found = descriptors(param["default_training_param"])
    if not any(isinstance(d.get("sel"), (int, list)) for _, d in found):
        return
    frames = list(configurations(param, base_dir))
    for key, desc in found:
        check_descriptor_sel(key, desc, frames, param["type_map"])


# ---------------------------------------------------------------- training template

def check_training_template(param: dict) -> None:
    """``default_training_param`` has the ``model`` and ``training`` sections (deepmd-kit needs
    them), and a ``loss`` section when ``final_training`` is given (its long training
    changes the loss prefactors).  Without ``loss`` and ``learning_rate`` otherwise,
    deepmd-kit's defaults apply (an ``ener`` loss, an ``exp`` learning rate).

    Raises
    ------
    ParamError
        naming the missing section and what to give.
    """
    template = param["default_training_param"]
    needed = {
        "model": 'a deepmd-kit model section: {"type_map": [...], "descriptor": {...}, "fitting_net": {...}}',
        "training": 'a deepmd-kit training section, e.g. {"numb_steps": 400000, "disp_file": "lcurve.out"} '
                    "(dpgen_lite fills in training_data and the seed)",
    }
    if param["final_training"] is not None:
        needed["loss"] = (f"a deepmd-kit loss section, e.g. {EXAMPLE_LOSS}: final_training sets its "
                          "prefactors (or remove final_training)")
    for section, fix in needed.items():
        value = template.get(section)
        require(isinstance(value, dict), f"default_training_param.{section} = "
                f"{'(missing)' if section not in template else repr(value)}: no {section} section; give {fix}")
