"""``param.json`` of ``dpgen autotest`` (DP-GEN / APEX keys), validated before any task is written.

::

    {"structures": ["confs/std-fcc"],
     "interaction": {"type": "eam_alloy", "model": "Cu_mishin1.eam.alloy", "type_map": {"Cu": 0}},
     "relaxation": {"cal_setting": {"relax_pos": true, "relax_shape": true, "relax_vol": true}},
     "properties": [{"type": "eos", "vol_start": 0.9, "vol_end": 1.1, "vol_step": 0.05}, ...]}

``structures``: glob patterns of folders holding a ``POSCAR`` (relative to the work folder).
``interaction``: one dict (DP-GEN), or a list of dicts each with a ``name`` (each interaction then
works in ``<work>/<name>/<conf>``); ``reference`` (optional) names the interaction, or a
``result.json`` path, that ``dpgen autotest compare`` measures the others against.
"""

from __future__ import annotations

import glob
from pathlib import Path

import ase.io
from dargs import Argument

from ..params import ParamError, arg, normalize
from .calculators.base import Calculator, get_calculator
from .properties.base import setting_args
from .registry import CALCULATORS, PROPERTIES


def interaction_arg(cls: type[Calculator]) -> Argument:
    """Schema of an ``interaction`` of type ``cls.name``."""
    return Argument("interaction", dict, sub_fields=[
        arg("type", str, "calculator type"),
        arg("type_map", [list, dict], "elements in type order: a list, or DP-GEN's {element: index}"),
        arg("name", str, "label of the interaction (folders, comparison)", default=cls.name),
        arg("command", str, "task command (default: the calculator's)", default=None),
        *cls.args()])


def property_arg(cls) -> Argument:
    """Schema of a ``properties`` entry of type ``cls.name``."""
    return Argument("property", dict, sub_fields=[
        arg("type", str, "property type"),
        arg("skip", bool, "leave this property out", default=False),
        arg("suffix", str, "folder suffix: <type>_<suffix>", default="00"),
        arg("cal_setting", dict, "relaxation settings of the tasks", default={}, sub_fields=setting_args()),
        *cls.args()])


def top_args() -> Argument:
    """Schema of the top level (interaction and properties are checked one by one)."""
    return Argument("param", dict, sub_fields=[
        arg("structures", list, "glob patterns of folders with a POSCAR"),
        arg("interaction", [dict, list], "the calculator, or a list of named calculators"),
        arg("relaxation", dict, "relaxation settings", default={},
           sub_fields=[arg("cal_setting", dict, "relaxation settings", default={}, sub_fields=setting_args())]),
        arg("properties", list, "properties computed after the relaxation", default=[]),
        arg("reference", str, "interaction name or result.json compared against", default=None),
    ])


def _typed(entry, where: str, registry, make_arg) -> dict:
    if not isinstance(entry, dict) or "type" not in entry:
        raise ParamError(f"{where} = {entry!r}: need a dict with a 'type'")
    try:
        cls = registry.get(entry["type"])
    except KeyError as err:
        raise ParamError(f"{where}.type: {err.args[0]}") from None
    return normalize(make_arg(cls), entry, where)


def load_param(param: dict, work_dir: Path, name: str = "param.json") -> dict:
    """Validate an autotest ``param`` completely; return it normalized with ``confs`` (Paths of the
    structure folders), ``interactions`` (list of dicts, each with ``name``) and ``props`` added.

    Raises
    ------
    ParamError
        unknown property or interaction type, bad keys, no structure matched, missing POSCAR or model
        file, elements of a structure absent from a type_map, Miller indices of the wrong length,
        relaxation asked of a calculator that cannot relax (DFT single points), ...
    """
    work_dir = Path(work_dir)
    param = normalize(top_args(), param, name)
    inters = param["interaction"] if isinstance(param["interaction"], list) else [param["interaction"]]
    inters = [_typed(x, f"{name}: interaction" + (f"[{i}]" if len(inters) > 1 else ""), CALCULATORS,
                     interaction_arg) for i, x in enumerate(inters)]
    names = [x["name"] for x in inters]
    if len(set(names)) != len(names):
        raise ParamError(f"{name}: interaction names {names} repeat; give each a distinct 'name'")
    props = [_typed(x, f"{name}: properties[{i}]", PROPERTIES, property_arg) for i, x in enumerate(param["properties"])]

    confs = []
    for pattern in param["structures"]:
        found = sorted(Path(p) for p in glob.glob(str(work_dir / pattern)))
        if not found:
            raise ParamError(f"{name}: structures: {pattern!r} matches no folder under {work_dir}")
        for folder in found:
            if not (folder / "POSCAR").is_file():
                raise ParamError(f"{name}: structures: {folder} has no POSCAR")
            confs.append(folder)

    from .properties.relaxation import Relaxation
    relax = Relaxation({"type": "relaxation", "cal_setting": param["relaxation"].get("cal_setting") or {}})
    objs = [relax] + [PROPERTIES.get(p["type"])(p) for p in props if not p["skip"]]
    folders = [o.folder for o in objs]
    if len(set(folders)) != len(folders):
        raise ParamError(f"{name}: properties share a folder ({folders}); give repeated types distinct 'suffix'")
    for inter in inters:
        calc = get_calculator(inter, work_dir)
        calc.check()
        for obj in objs:
            s = obj.setting()
            if s["relax_shape"] and not s["relax_vol"]:
                raise ParamError(f"{name}: {obj.folder}.cal_setting: relax_shape without relax_vol is not "
                                 "supported; set relax_vol true or relax_shape false")
            if not calc.can_relax and (s["relax_pos"] or s["relax_vol"]):
                raise ParamError(f"{name}: interaction {inter['name']!r} ({inter['type']}) computes single points "
                                 f"only; set {obj.folder}.cal_setting relax_pos, relax_shape, relax_vol false "
                                 "(the relaxation key included) and give relaxed structures")
        for folder in confs:
            symbols = set(ase.io.read(folder / "POSCAR", format="vasp").get_chemical_symbols())
            missing = sorted(symbols - set(calc.type_map))
            if missing:
                raise ParamError(f"{name}: {folder}/POSCAR has element(s) {missing} absent from interaction "
                                 f"{inter['name']!r} type_map = {calc.type_map}; add them to type_map")
    for folder in confs:
        structure = ase.io.read(folder / "POSCAR", format="vasp")
        for obj in objs:
            obj.check(structure)
    param.update(interactions=inters, confs=confs, props=objs)
    return param
