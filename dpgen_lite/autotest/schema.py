"""``param.json`` of ``dpgen autotest`` (DP-GEN / APEX keys), validated before any task is written.

::

    {"structures": ["confs/std-fcc"],
     "interaction": {"type": "eam_alloy", "model": "Cu_mishin1.eam.alloy", "type_map": {"Cu": 0}},
     "relaxation": {"cal_setting": {"relax_pos": true, "relax_shape": true, "relax_vol": true}},
     "properties": [{"type": "eos", "vol_start": 0.9, "vol_end": 1.1, "vol_step": 0.05}, ...]}

``structures``: glob patterns of folders holding a ``POSCAR`` (relative to the work folder; one
pattern may be given as a string; a pattern matching nothing is logged, as DP-GEN skips it).
``interaction``: one dict (DP-GEN), or a list of dicts each with a ``name`` (each interaction then
works in ``<work>/<name>/<conf>``); ``reference`` (optional) names the interaction, or a
``result.json`` path, that ``dpgen autotest compare`` measures the others against.
``relaxation`` and each ``properties`` entry take DP-GEN's ``cal_type`` ("relaxation": as
``cal_setting`` says; "static": single points) and ``cal_setting``; an entry also takes ``skip``,
DP-GEN's refine (``output_suffix`` with ``init_from_suffix``: restart from the final structures of
another folder of the same property, run before), reproduce (``reproduce: true`` with
``init_data_path``: :mod:`.properties.reproduce`) and ``start_confs_path`` (start from another
run's relaxed structure).  DP-GEN keys dpgen_lite cannot honour are refused with the reason.
"""

from __future__ import annotations

import glob
import logging
import os
from pathlib import Path

import ase.io
from dargs import Argument

from ..params import ParamError, arg, normalize
from .calculators.base import Calculator, get_calculator
from .properties.reproduce import Reproduce
from .properties.base import VASP_SETTING, check_setting, setting_args
from .registry import CALCULATORS, PROPERTIES

log = logging.getLogger(__name__)

#: DP-GEN interaction types dpgen_lite's autotest does not drive -> why, and what to do instead
REFUSED_TYPES = {
    "vasp": "dpgen_lite's autotest does not run VASP relaxations (DP-GEN's INCAR with ISIF set from cal_setting); "
            "relax with VASP elsewhere, then compute single points on the relaxed structures with "
            "{\"type\": \"fp\", \"fp_style\": \"vasp\", \"fp_incar\": ..., \"fp_pp_path\": ..., "
            "\"fp_pp_files\": ...} and cal_type \"static\", or use a LAMMPS or ASE interaction",
    "abacus": "dpgen_lite's autotest does not run ABACUS relaxations; relax elsewhere, then compute single points "
              "with {\"type\": \"fp\", \"fp_style\": \"abacus\", ...} and cal_type \"static\", or use a "
              "LAMMPS or ASE interaction",
}
CAL_TYPES = ("relaxation", "static")


def interaction_arg(cls: type[Calculator]) -> Argument:
    """Schema of an ``interaction`` of type ``cls.name``."""
    return Argument("interaction", dict, sub_fields=[
        arg("type", str, "calculator type"),
        arg("type_map", [list, dict], "elements in type order: a list, or DP-GEN's {element: index}"),
        arg("name", str, "label of the interaction (folders, comparison)", default=cls.name),
        arg("command", str, "task command (default: the calculator's)", default=None),
        *cls.args()])


def property_arg(cls, derived: bool = False) -> Argument:
    """Schema of a ``properties`` entry of type ``cls.name``; ``derived`` (a refine or a
    reproduce, whose tasks come from another folder): the property's own keys are all optional."""
    own = cls.args()
    if derived:
        for a in own:
            a.optional = True
    return Argument("property", dict, sub_fields=[
        arg("type", str, "property type"),
        arg("skip", bool, "leave this property out", default=False),
        arg("suffix", str, "folder suffix: <type>_<suffix>", default="00"),
        arg("cal_type", str, "relaxation (as cal_setting says) or static (single points)", default="relaxation"),
        arg("cal_setting", dict, "relaxation settings of the tasks", default={}, sub_fields=setting_args()),
        arg("init_from_suffix", str, "refine / reproduce: suffix of the folder the tasks come from", default=None),
        arg("output_suffix", str, "refine: suffix of this folder (<type>_<output_suffix>)", default=None),
        arg("reproduce", bool, "single points of another run's frames, in <type>_reprod", default=False),
        arg("init_data_path", str, "reproduce: the other run's confs folder", default=None),
        arg("reprod_last_frame", bool, "reproduce: only the final frame of each task", default=None),
        arg("start_confs_path", str, "confs folder of another run whose relaxed structures the tasks start from",
            default=None),
        *own])


def top_args() -> Argument:
    """Schema of the top level (interaction and properties are checked one by one)."""
    return Argument("param", dict, sub_fields=[
        arg("structures", [list, str], "glob patterns of folders with a POSCAR"),
        arg("interaction", [dict, list], "the calculator, or a list of named calculators"),
        arg("relaxation", dict, "relaxation settings", default={},
            sub_fields=[arg("cal_type", str, "relaxation or static (a single point)", default="relaxation"),
                        arg("cal_setting", dict, "relaxation settings", default={}, sub_fields=setting_args())]),
        arg("properties", list, "properties computed after the relaxation", default=[]),
        arg("reference", str, "interaction name or result.json compared against", default=None),
    ])


def _typed(entry, where: str, registry, make_arg) -> dict:
    if not isinstance(entry, dict) or "type" not in entry:
        raise ParamError(f"{where} = {entry!r}: need a dict with a 'type'")
    if registry is CALCULATORS and entry["type"] in REFUSED_TYPES:
        raise ParamError(f"{where}.type = {entry['type']!r}: refused: {REFUSED_TYPES[entry['type']]}")
    if registry is PROPERTIES and entry["type"] == "reproduce":
        raise ParamError(f"{where}.type = 'reproduce': not a property; set reproduce: true in the entry of the "
                         "property reproduced")
    try:
        cls = registry.get(entry["type"])
    except KeyError as err:
        raise ParamError(f"{where}.type: {err.args[0]}") from None
    return normalize(make_arg(cls), entry, where)


def _property(entry, where: str, work_dir: Path) -> dict:
    """One ``properties`` entry normalized, DP-GEN's refine / reproduce / start keys checked and
    their paths resolved (``init_data_path_abs``, ``start_confs_path_abs``).

    Raises
    ------
    ParamError
        for contradicting keys, naming them, their values and the fix.
    """
    derived = isinstance(entry, dict) and bool(entry.get("output_suffix") or entry.get("reproduce"))
    conf = _typed(entry, where, PROPERTIES, lambda cls: property_arg(cls, derived))
    why = derived and PROPERTIES.get(conf["type"]).not_derived
    if why:
        key = "output_suffix" if conf["output_suffix"] else "reproduce"
        raise ParamError(f"{where}.{key} = {conf[key]!r}: {conf['type']} is neither refined nor reproduced ({why}); "
                         "remove output_suffix, init_from_suffix, reproduce and init_data_path")
    if conf["cal_type"] not in CAL_TYPES:
        raise ParamError(f"{where}.cal_type = {conf['cal_type']!r}: allowed {', '.join(CAL_TYPES)}")
    if conf["output_suffix"] and conf["reproduce"]:
        raise ParamError(f"{where}: output_suffix = {conf['output_suffix']!r} (refine) and reproduce = true: "
                         "give one of them")
    if conf["output_suffix"]:
        init = conf["init_from_suffix"] or "00"
        if "suffix" in entry or conf["output_suffix"] == init:
            raise ParamError(f"{where}: output_suffix = {conf['output_suffix']!r} names the refined folder; it "
                             f"must differ from init_from_suffix = {init!r} and replaces suffix")
    elif conf["init_from_suffix"] and not conf["reproduce"]:
        raise ParamError(f"{where}.init_from_suffix = {conf['init_from_suffix']!r} alone does nothing; add "
                         "output_suffix (refine into <type>_<output_suffix>) or reproduce: true")
    if conf["reproduce"]:
        if not conf["init_data_path"]:
            raise ParamError(f"{where}: reproduce = true needs init_data_path (the confs folder of the run "
                             "reproduced)")
        if entry.get("cal_type", "static") != "static":
            raise ParamError(f"{where}.cal_type = {entry['cal_type']!r}: reproduce computes single points; "
                             "remove cal_type")
        conf["cal_type"] = "static"
    else:
        given = [k for k in ("init_data_path", "reprod_last_frame") if conf[k] is not None]
        if given:
            raise ParamError(f"{where}.{given[0]} = {conf[given[0]]!r}: used only with reproduce: true; add "
                             "it or remove the key")
    if conf["start_confs_path"] and derived:
        raise ParamError(f"{where}.start_confs_path = {conf['start_confs_path']!r}: a refine or reproduce takes its "
                         "structures from init_from_suffix's folder; remove start_confs_path")
    for key in ("init_data_path", "start_confs_path"):  # resolved against the work folder, as "<key>_abs"
        if conf[key]:
            conf[f"{key}_abs"] = os.path.normpath(work_dir / conf[key])
    check_setting(where, conf)
    return conf


def _objects(props: list[dict], relaxation: dict, name: str) -> list:
    """The relaxation and the property objects (skipped entries left out).

    Raises
    ------
    ParamError
        for two objects in one folder, or a refine of a folder this file computes too.
    """
    from .properties.relaxation import Relaxation
    objs = [Relaxation({"type": "relaxation", **relaxation})]
    objs += [(Reproduce if p["reproduce"] else PROPERTIES.get(p["type"]))(p) for p in props if not p["skip"]]
    folders = [o.folder for o in objs]
    if len(set(folders)) != len(folders):
        raise ParamError(f"{name}: properties share a folder ({folders}); give repeated types distinct 'suffix'")
    for o in objs:
        init = f"{o.name}_{o.conf.get('init_from_suffix') or '00'}"
        if o.refine and init in folders:
            raise ParamError(f"{name}: {o.folder} refines {init}, which this file computes too; refine in a second "
                             f"file once {init} is posted")
    return objs


def _structures(patterns, work_dir: Path, name: str) -> list[Path]:
    """Folders matched by ``structures`` (a pattern matching nothing is logged).

    Raises
    ------
    ParamError
        if nothing matches at all, or a folder has no POSCAR.
    """
    confs = []
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        found = sorted(Path(p) for p in glob.glob(str(work_dir / pattern)))
        if not found:
            log.warning("%s: structures: %r matches no folder under %s", name, pattern, work_dir)
        for folder in found:
            if not (folder / "POSCAR").is_file():
                raise ParamError(f"{name}: structures: {folder} has no POSCAR; write the structure there "
                                 "(DP-GEN's std-* and mp-* POSCARs are not generated or downloaded)")
            confs.append(folder)
    if not confs:
        raise ParamError(f"{name}: structures: {patterns!r} matches no folder under {work_dir}")
    return confs


def load_param(param: dict, work_dir: Path, name: str = "param.json") -> dict:
    """Validate an autotest ``param`` completely; return it normalized with ``confs`` (Paths of the
    structure folders), ``interactions`` (list of dicts, each with ``name``) and ``props`` added.

    Raises
    ------
    ParamError
        unknown property or interaction type, bad keys, no structure matched, missing POSCAR or model
        file, elements of a structure absent from a type_map, Miller indices of the wrong length,
        relaxation asked of a calculator that cannot relax (DFT single points), a DP-GEN key or
        interaction type dpgen_lite cannot honour (refused with the reason), missing files of
        start_confs_path or reproduce, ...
    """
    work_dir = Path(work_dir)
    param = normalize(top_args(), param, name)
    inters = param["interaction"] if isinstance(param["interaction"], list) else [param["interaction"]]
    inters = [_typed(x, f"{name}: interaction" + (f"[{i}]" if len(inters) > 1 else ""), CALCULATORS,
                     interaction_arg) for i, x in enumerate(inters)]
    names = [x["name"] for x in inters]
    if len(set(names)) != len(names):
        raise ParamError(f"{name}: interaction names {names} repeat; give each a distinct 'name'")
    relaxation = param["relaxation"]
    if relaxation["cal_type"] not in CAL_TYPES:
        raise ParamError(f"{name}: relaxation.cal_type = {relaxation['cal_type']!r}: allowed {', '.join(CAL_TYPES)}")
    check_setting(f"{name}: relaxation", relaxation)
    props = [_property(x, f"{name}: properties[{i}]", work_dir) for i, x in enumerate(param["properties"])]
    confs = _structures(param["structures"], work_dir, name)
    objs = _objects(props, relaxation, name)
    for inter in inters:
        calc = get_calculator(inter, work_dir)
        calc.check()
        for obj in objs:
            obj.check_interaction(calc, f"{name}: {obj.folder}")
            s = obj.setting()
            if s["relax_shape"] and not s["relax_vol"]:
                raise ParamError(f"{name}: {obj.folder}.cal_setting: relax_shape without relax_vol is not "
                                 "supported; set relax_vol true or relax_shape false")
            if not calc.can_relax and (s["relax_pos"] or s["relax_vol"]):
                raise ParamError(f"{name}: interaction {inter['name']!r} ({inter['type']}) computes single points "
                                 f"only; set {obj.folder}.cal_type \"static\" (the relaxation key included) and "
                                 "give relaxed structures")
            vasp = {k: s[k] for k in VASP_SETTING if k in s}
            if vasp and calc.name == "fp":
                raise ParamError(f"{name}: {obj.folder}.cal_setting {vasp}: refused: DP-GEN's VASP INCAR tags; set "
                                 "them in the fp style's INCAR (fp_incar)")
            if vasp:
                log.warning("%s: %s.cal_setting %s: ignored (VASP INCAR tags; interaction %r is %s)", name,
                            obj.folder, vasp, inter["name"], inter["type"])
        for folder in confs:
            symbols = set(ase.io.read(folder / "POSCAR", format="vasp").get_chemical_symbols())
            missing = sorted(symbols - set(calc.type_map))
            if missing:
                raise ParamError(f"{name}: {folder}/POSCAR has element(s) {missing} absent from interaction "
                                 f"{inter['name']!r} type_map = {calc.type_map}; add them to type_map")
    for folder in confs:
        structure = ase.io.read(folder / "POSCAR", format="vasp")
        for obj in objs:
            obj.start_file(folder)
            if isinstance(obj, Reproduce):
                obj.sources(folder)
            elif not obj.refine:
                obj.check(structure)
                obj.check_files(folder, structure)
    param.update(interactions=inters, confs=confs, props=objs)
    return param
