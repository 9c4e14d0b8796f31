"""The initial training data: ``init_data_sys`` entries expanded into deepmd-kit systems.

An entry (relative to ``init_data_prefix``) is, as in DP-GEN,

* a deepmd/npy folder (it holds ``type.raw``);
* a folder of several such systems, found below it (DP-GEN's ``expand_sys_str``);
* an HDF5 file (``.h5`` / ``.hdf5``) in dpdata's ``deepmd/hdf5`` layout: each group that holds
  ``type.raw`` is a system, named ``file.h5#/group`` as deepmd-kit reads it.
"""

from __future__ import annotations

from pathlib import Path

import dpdata

from ..params import ParamError, require

HDF5_SUFFIXES = (".h5", ".hdf5")


def expand_system(path: Path) -> list[str]:
    """The deepmd-kit systems of one data entry (folders, or ``file.h5#/group``), sorted.

    Raises
    ------
    ParamError
        if ``path`` is missing or holds no system.
    """
    path = Path(path)
    if path.is_file() and path.suffix in HDF5_SUFFIXES:
        import h5py
        groups = []
        with h5py.File(path, "r") as fh:
            fh.visit(lambda name: groups.append(name) if name.endswith("type.raw") else None)
        systems = [f"{path}#/{g.rpartition('/')[0]}" if "/" in g else f"{path}#/" for g in sorted(groups)]
    elif (path / "type.raw").is_file():
        systems = [str(path)]
    elif path.is_dir():
        systems = sorted(str(t.parent) for t in path.rglob("type.raw"))
    else:
        raise ParamError(f"missing file: {path} does not exist (make it with `dpgen init_bulk`, "
                         "or fix init_data_prefix)")
    require(bool(systems), f"{path}: no deepmd system in it (no type.raw below it); run `dpgen init_bulk` "
            "or give deepmd/npy folders or HDF5 files")
    return systems


def load_system(system: str) -> dpdata.LabeledSystem:
    """A system named by :func:`expand_system` (deepmd/npy folder or ``file.h5#/group``)."""
    if "#" in system:
        return dpdata.LabeledSystem(system, fmt="deepmd/hdf5")
    return dpdata.LabeledSystem(system, fmt="deepmd/npy")


def init_systems(param: dict, base_dir: Path) -> list[tuple[int, str]]:
    """Every system of ``init_data_sys`` as ``(entry index, system)``, in entry order.

    Raises
    ------
    ParamError
        naming the entry that is missing or empty.
    """
    out = []
    for i, entry in enumerate(param["init_data_sys"]):
        path = Path(base_dir) / param["init_data_prefix"] / entry
        try:
            out += [(i, s) for s in expand_system(path)]
        except ParamError as err:
            raise ParamError(f"init_data_sys[{i}] = {entry!r}: {err}") from None
    return out


def check_init_data(param: dict, base_dir: Path) -> None:
    """Each init system exists, names its elements (``type_map.raw``) and has only ``type_map`` elements.

    Raises
    ------
    ParamError
        for the first problem.
    """
    type_map = param["type_map"]
    for i, system in init_systems(param, base_dir):
        where = f"init_data_sys[{i}] ({system})"
        if "#" not in system:
            require((Path(system) / "type_map.raw").is_file(),
                    f"{where}: no type_map.raw, so its atom types have no element names; write the elements "
                    f"of types 0, 1, ... one per line into {Path(system) / 'type_map.raw'}")
        data = load_system(system)
        missing = [n for n, c in zip(data["atom_names"], data["atom_numbs"]) if c > 0 and n not in type_map]
        require(not missing, f"{where}: element(s) {missing} are not in type_map = {type_map}; "
                "add them to type_map (and mass_map)")
