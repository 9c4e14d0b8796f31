"""``dpgen init_bulk``: a labelled starting data set for a bulk crystal, as DP-GEN's.

Two routes, chosen by the keys given:

**DP-GEN's stages** (``stages`` given, or no ``fp_style``; a DP-GEN ``param.json`` as it is).
The fp program is ``fp_style`` when given, else DP-GEN's ``init_fp_style`` (VASP, the
default, or ABACUS).  Folders are DP-GEN's, under ``<out>`` =
``<elements, lower case>.<cell_type>.<NNxNNxNN>`` or ``<POSCAR file name>.<NNxNNxNN>``:

1. ``00.place_ele/sys-<counts>/POSCAR``: the supercell; for ``cell_type`` with several
   elements, one system per composition, species placed at random (DP-GEN's
   ``place_element``); then the relaxation of each system (VASP: ``relax_incar``, POTCAR
   from ``potcars``; CP2K: CELL_OPT, or GEO_OPT from ``relax_incar``) leaving ``CONTCAR``.
2. ``01.scale_pert/sys-*/scale-<s>/<k>/POSCAR``: the relaxed (``CONTCAR``) or, with
   ``skip_relax``, the unrelaxed structure scaled by each ``scale``; ``000000`` unperturbed,
   ``000001``.. ``pert_numb`` perturbed (box strain up to ``pert_box``, atoms up to
   ``pert_atom`` Å); species re-shuffled per frame on the ``cell_type`` route (DP-GEN).
3. ``02.md/sys-*/scale-<s>/<k>/``: a short AIMD (``md_nstep`` steps) from each frame.
4. ``02.md/sys-*/deepmd``: the AIMD frames of each system (deepmd/raw + npy), at most
   ``coll_ndata``; VASP tasks whose OUTCAR does not hold md_nstep ionic steps are left out
   (DP-GEN's rule).  Without stage 3 (``stages`` [2, 4], any fp style), stage 4 instead labels
   every frame of stage 2 with single-point fp tasks (``<out>/02.fp``).

Stages 1 and 3 need a style that can relax and run AIMD (``write_relax_inputs`` /
``write_md_inputs``: vasp and cp2k); others are refused when the input is checked.  Every
DFT stage runs through dpdispatcher (the ``fp`` section of ``machine.json``) and is
resumable: each stage leaves a record (``*.json`` in its folder) and a rerun skips what
is finished; stage 4 is re-read on every run.

**dpgen_lite's own route** (``fp_style`` given and no ``stages``): supercell of ``cell_type``
(``ase.build.bulk``, ``latt`` = its ``a``) or of a POSCAR, scaled, perturbed (dpdata,
``normal``), each frame labelled with single-point fp tasks.  Layout
``<Elements>.<cell_type or POSCAR>.<NNxNNxNN>/01.scale_pert/sys-<natoms>/scale-<s>/<k>/POSCAR``,
``.../02.fp`` (tasks) and ``.../02.md/sys-<natoms>/deepmd``.

``latt`` keeps DP-GEN's meaning on DP-GEN's route: the cubic constant for fcc, bcc and sc;
for hcp ``a`` = latt / √2 (c/a ideal); for diamond the 2-atom primitive cell of cubic
constant 2 x latt.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path

import ase
import ase.build
import ase.io
import dpdata
import numpy as np
from dargs import Argument
from dpdata.periodic_table import ELEMENTS

from .context import Context, log
from .dispatch import TaskFailures, TaskSpec, run_tasks
from .label.base import FpTaskFailed, get_style
from .label.stage import collect_labels, fp_style, run_fp_tasks, write_fp_tasks
from .params import ParamError, arg
from .record import atomic_write, read_json

CELL_TYPES = ("fcc", "bcc", "hcp", "sc", "diamond")
MADE = "tasks.made"
#: DP-GEN's ``init_fp_style`` values and the fp style each one means
INIT_FP_STYLES = {"VASP": "vasp", "ABACUS": "abacus"}
#: DP-GEN's folders
PLACE, SCALE_PERT, MD = "00.place_ele", "01.scale_pert", "02.md"
#: single-point labelling of stage 4 when no AIMD ran
LABEL = "02.fp"
#: stage records (JSON) in the stage folders
PLACE_REC, RELAX_REC, PERT_REC, MD_REC = "place.json", "relax.json", "scale_pert.json", "md.json"
STAGE_NAMES = {1: "relax", 2: "scale and perturb", 3: "AIMD", 4: "collect"}


def init_bulk_args() -> list[Argument]:
    """The keys of ``dpgen init_bulk`` besides the fp style's (``fp_style``, its keys, ``ratio_failed``).

    DP-GEN's keys keep DP-GEN's meaning; keys DP-GEN requires are optional here when the
    route does not need them, and are then checked by :func:`check_init_bulk`.
    """
    return [
        arg("stages", list, "DP-GEN's stages to run, ascending: 1 relax, 2 scale and perturb, 3 AIMD, 4 collect. "
            "Default: [1, 2, 3, 4] ([2, 3, 4] with skip_relax) when no fp_style is given; with fp_style and no "
            "stages, dpgen_lite's route (perturbed frames labelled with single points)", default=None),
        arg("type_map", list, "element of each atom type of the data (default: elements)", default=None),
        arg("elements", list, "elements of the structure (DP-GEN: atom types); cell_type places them", default=None),
        arg("cell_type", str, f"lattice when from_poscar is false: {', '.join(CELL_TYPES)}", default=None),
        arg("latt", [float, int], "lattice constant, Å (DP-GEN: hcp a = latt/√2, diamond cubic a = 2 latt)",
            default=None),
        arg("from_poscar", bool, "start from from_poscar_path instead of cell_type", default=False),
        arg("from_poscar_path", str, "POSCAR (ABACUS: STRU) of the starting cell", default=None),
        arg("super_cell", list, "supercell repetitions, 3 integers"),
        arg("scale", list, "isotropic length scales applied to the (relaxed) supercell", default=[1.0]),
        arg("skip_relax", bool, "scale the unrelaxed POSCAR (true) or stage 1's CONTCAR (false)", default=False),
        arg("pert_numb", int, "perturbed copies of each scaled cell"),
        arg("pert_box", [float, int], "largest relative box perturbation (strain)", default=0.03),
        arg("pert_atom", [float, int], "largest atom displacement, Å", default=0.01),
        arg("md_nstep", int, "AIMD steps of stage 3 (VASP: NSW of md_incar wins, as in DP-GEN)", default=None),
        arg("coll_ndata", int, "most frames collected per system in stage 4 (null: all)", default=None),
        arg("potcars", list, "VASP: one POTCAR file per elements entry, in that order", default=None),
        arg("relax_incar", str, "stage 1 input: VASP INCAR; CP2K: optional input merged over the relaxation "
            "(e.g. GLOBAL/RUN_TYPE GEO_OPT, MOTION/CELL_OPT)", default=None),
        arg("md_incar", str, "stage 3 input: VASP INCAR; CP2K: optional input merged over the AIMD "
            "(e.g. MOTION/MD TEMPERATURE, TIMESTEP)", default=None),
        arg("init_fp_style", str, "DP-GEN's program switch when fp_style is absent: VASP (default) or ABACUS",
            default=None),
        arg("reuse_relax_chgcar", bool, "VASP: copy each stage-1 CHGCAR into the stage-3 tasks of its system",
            default=False),
        arg("relax_kpt", str, "ABACUS: KPT file of stage 1 (accepted; ABACUS relax/AIMD are not run)", default=None),
        arg("md_kpt", str, "ABACUS: KPT file of stage 3 (accepted; ABACUS relax/AIMD are not run)", default=None),
        arg("atom_masses", list, "ABACUS: masses of elements (accepted; ABACUS relax/AIMD are not run)",
            default=None),
        arg("orb_files", list, "ABACUS orbital files of DP-GEN's examples (accepted, not used)", default=None),
        arg("dpks_descriptor", str, "ABACUS DeePKS descriptor of DP-GEN's examples (accepted, not used)",
            default=None),
        arg("dpks_model", str, "ABACUS DeePKS model of DP-GEN's examples (accepted, not used)", default=None),
        arg("deepgen_templ", str, "found in DP-GEN's ABACUS examples (accepted, not used)", default=None),
        arg("random_seed", int, "seed of the perturbations and of the species placement", default=2020),
    ]


# --------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ParamError(message)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def is_staged(param: dict) -> bool:
    """DP-GEN's staged route: ``stages`` given, or no ``fp_style``."""
    return param.get("stages") is not None or not param.get("fp_style")


def with_defaults(param: dict) -> dict:
    """A copy of ``param`` with the defaults of :func:`init_bulk_args` filled in, elements capitalised
    (DP-GEN's ``al`` -> ``Al``), ``type_map`` defaulting to ``elements`` and the stages chosen."""
    p = copy.deepcopy(dict(param))
    for a in init_bulk_args():
        if a.optional:
            p.setdefault(a.name, copy.deepcopy(a.default))
    p.setdefault("fp_style", None)
    p.setdefault("ratio_failed", 0.2)
    if isinstance(p.get("elements"), list):
        p["elements"] = [e[:1].upper() + e[1:] if isinstance(e, str) else e for e in p["elements"]]
    if p.get("type_map") is None and p.get("elements"):
        p["type_map"] = list(p["elements"])
    if p["stages"] is None and is_staged(p):
        p["stages"] = [2, 3, 4] if p["skip_relax"] else [1, 2, 3, 4]
        log.info("init_bulk: stages not given: running %s (DP-GEN requires the key; set it to choose)", p["stages"])
    return p


def stage_style_name(p: dict) -> str:
    """The fp style of the staged route: ``fp_style``, else DP-GEN's ``init_fp_style`` (default VASP)."""
    return p.get("fp_style") or INIT_FP_STYLES[p.get("init_fp_style") or "VASP"]


def can_relax_md(style_cls) -> bool:
    """Whether an fp style can run init_bulk's relaxation and AIMD (stages 1 and 3)."""
    return all(hasattr(style_cls, m) for m in ("write_relax_inputs", "write_md_inputs", "read_relaxed",
                                               "read_md", "check_init_stages"))


def _check_common(p: dict, base_dir: Path) -> None:
    sc = p["super_cell"]
    _require(isinstance(sc, list) and len(sc) == 3 and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1
                                                            for n in sc),
             f"super_cell = {sc}: need 3 positive integers, e.g. [2, 2, 2]")
    scale = p["scale"]
    _require(isinstance(scale, list) and len(scale) > 0 and all(_is_num(s) and s > 0 for s in scale),
             f"scale = {scale}: need a non-empty list of positive numbers, e.g. [0.98, 1.0, 1.02]")
    _require(p["pert_numb"] >= 0, f"pert_numb = {p['pert_numb']}: must be >= 0")
    _require(_is_num(p["pert_box"]) and 0 <= p["pert_box"] < 1, f"pert_box = {p['pert_box']}: must lie in [0, 1)")
    _require(_is_num(p["pert_atom"]) and p["pert_atom"] >= 0, f"pert_atom = {p['pert_atom']}: must be >= 0 (Å)")
    elements = p["elements"]
    if elements is not None:
        bad = [e for e in elements if not (isinstance(e, str) and e in ELEMENTS)]
        _require(isinstance(elements, list) and elements and not bad,
                 f"elements = {elements}: {bad or 'empty'} not element symbols; give e.g. [\"Al\", \"Mg\"]")
        _require(len(set(elements)) == len(elements), f"elements = {elements}: an element is repeated")
    type_map = p["type_map"]
    _require(isinstance(type_map, list) and len(type_map) > 0,
             "type_map is missing: give the element of each atom type (or elements, which it defaults to)")
    if elements:
        missing = [e for e in elements if e not in type_map]
        _require(not missing, f"type_map = {type_map}: elements {missing} are missing; add them")
    if p["from_poscar"]:
        path = p["from_poscar_path"]
        _require(bool(path) and (base_dir / path).is_file(),
                 f"from_poscar_path = {path!r}: no such file under {base_dir} (from_poscar is true)")
    else:
        _require(p["cell_type"] in CELL_TYPES,
                 f"cell_type = {p['cell_type']!r}: allowed {', '.join(CELL_TYPES)} (or from_poscar: true)")
        _require(_is_num(p["latt"]) and p["latt"] > 0,
                 f"latt = {p['latt']}: cell_type {p['cell_type']!r} needs a positive lattice constant (Å)")
        _require(bool(elements), f"elements = {elements}: cell_type needs the element(s) to place")


def _check_staged(p: dict, base_dir: Path) -> None:
    stages = p["stages"]
    _require(isinstance(stages, list) and stages and all(s in (1, 2, 3, 4) for s in stages)
             and list(stages) == sorted(set(stages)),
             f"stages = {stages}: a non-empty ascending list of distinct stages among 1 (relax), 2 (scale and "
             "perturb), 3 (AIMD), 4 (collect)")
    _require(bool(p["elements"]), "elements is missing: DP-GEN's init_bulk needs the list of elements")
    ifs = p["init_fp_style"]
    _require(ifs is None or ifs in INIT_FP_STYLES,
             f"init_fp_style = {ifs!r}: allowed {', '.join(INIT_FP_STYLES)} (or give fp_style, e.g. cp2k)")
    if p["fp_style"] and ifs and INIT_FP_STYLES[ifs] != p["fp_style"]:
        raise ParamError(f"init_fp_style = {ifs!r} and fp_style = {p['fp_style']!r} name different programs; "
                         "give one of them")
    _require(p["md_nstep"] is None or p["md_nstep"] >= 0, f"md_nstep = {p['md_nstep']}: must be >= 0")
    _require(p["coll_ndata"] is None or p["coll_ndata"] >= 1,
             f"coll_ndata = {p['coll_ndata']}: must be >= 1 (or null: every frame)")
    masses = p["atom_masses"]
    _require(masses is None or (len(masses) == len(p["elements"]) and all(_is_num(m) and m > 0 for m in masses)),
             f"atom_masses = {masses}: one positive mass per elements entry {p['elements']}")
    for key in ("orb_files", "dpks_descriptor", "dpks_model", "deepgen_templ", "relax_kpt", "md_kpt", "atom_masses"):
        if p[key] is not None:
            log.info("init_bulk: %s is accepted for DP-GEN files but not used by dpgen_lite", key)

    name = stage_style_name(p)
    try:
        cls = get_style(name)
    except KeyError as err:
        raise ParamError(str(err.args[0])) from None
    out = base_dir / dpgen_out_dir_name(p)
    relax_done = bool((read_json(out / PLACE / RELAX_REC) or {}).get("done"))
    pert_done = bool((read_json(out / SCALE_PERT / PERT_REC) or {}).get("done"))
    md_ran = bool((read_json(out / MD / MD_REC) or {}).get("ran"))
    aimd = [s for s in (1, 3) if s in stages]
    if aimd and not can_relax_md(cls):
        key = "fp_style" if p["fp_style"] else "init_fp_style"
        raise ParamError(
            f"stages = {stages} with {key} = {p[key] or 'VASP'!r}: dpgen_lite runs the relaxation (stage 1) and "
            f"the AIMD (stage 3) with vasp or cp2k only, not with {name!r}. To use {name!r}, set skip_relax: true "
            f"and stages: [2, 4] with fp_style: {name!r} and its keys: stage 4 then labels every scaled and "
            "perturbed frame with single-point calculations.")
    if p["reuse_relax_chgcar"]:
        _require(name == "vasp", f"reuse_relax_chgcar = true: a VASP option; fp style {name!r} has no CHGCAR; "
                 "remove it")
        if 3 in stages:
            _require(1 in stages or relax_done, "reuse_relax_chgcar = true: stage 3 copies the CHGCAR of stage 1, "
                     f"which has not run; add 1 to stages = {stages}")
    if 2 in stages and not p["skip_relax"]:
        _require(1 in stages or relax_done,
                 f"skip_relax = false: stage 2 scales the relaxed structures ({PLACE}/sys-*/CONTCAR), but stage 1 "
                 f"is not in stages = {stages} and has not run; add 1 to stages or set skip_relax: true")
    if 3 in stages:
        _require(2 in stages or pert_done, f"stages = {stages}: stage 3 runs AIMD from the frames of stage 2 "
                 f"({SCALE_PERT}), which has not run; add 2 to stages")
    if 4 in stages and 3 not in stages and not md_ran:
        _require(2 in stages or pert_done, f"stages = {stages}: stage 4 collects stage 3's AIMD or labels stage "
                 "2's frames, and neither has run; add 2 and 3 to stages")
        _require(bool(p["fp_style"]),
                 f"stages = {stages}: without stage 3 (AIMD), stage 4 labels every frame of stage 2 with "
                 "single-point calculations, which needs fp_style and its keys (e.g. fp_style: vasp, fp_incar, "
                 "fp_pp_path, fp_pp_files); or add 3 to stages for DP-GEN's AIMD")
    style = cls(p, base_dir)
    try:
        if aimd:
            style.check_init_stages(stages)
        if 4 in stages and 3 not in stages and not md_ran:
            style.check()
    except (KeyError, ValueError) as err:
        raise ParamError(str(err.args[0])) from None
    fixed = _fingerprints(p, name)
    for folder, rec, want in ((PLACE, PLACE_REC, fixed["place"]), (PLACE, RELAX_REC, fixed["relax"]),
                              (SCALE_PERT, PERT_REC, fixed["pert"]), (MD, MD_REC, fixed["md"])):
        old = read_json(out / folder / rec)
        if old is not None:
            changed = {k: (old.get(k), v) for k, v in want.items() if old.get(k) != v}
            _require(not changed, f"{out / folder} was made with other values: "
                     + ", ".join(f"{k} = {a!r} then, {b!r} now" for k, (a, b) in changed.items())
                     + f"; restore them, or delete {out / folder} (and the later stages' folders) to redo it")


def check_init_bulk(param: dict, base_dir: Path) -> dict:
    """Check every init_bulk key before any work; return the parameters with defaults filled in.

    Raises
    ------
    ParamError
        naming the key, the value and what is allowed.
    """
    base_dir = Path(base_dir)
    p = with_defaults(param)
    staged = is_staged(p)
    _check_common(p, base_dir)
    if staged:
        _check_staged(p, base_dir)
    else:
        unused = [k for k in ("potcars", "relax_incar", "md_incar", "md_nstep", "coll_ndata", "init_fp_style")
                  if p.get(k) is not None]
        if unused:
            log.warning("init_bulk: %s only serve DP-GEN's stages; with fp_style and no stages they are not used "
                        "(give stages to run DP-GEN's route)", ", ".join(unused))
        try:  # the style's own checks, as for `dpgen run`
            get_style(p["fp_style"])(p, base_dir).check()
        except (KeyError, ValueError) as err:
            raise ParamError(str(err.args[0])) from None
    return p


# --------------------------------------------------------------------------------------
# dpgen_lite's own route (fp_style, no stages)
# --------------------------------------------------------------------------------------


def unit_cell(param: dict, base_dir: Path) -> ase.Atoms:
    """The unit cell: ``from_poscar_path``, or ``cell_type`` of ``elements[0]`` with ``latt`` (Å).

    Raises
    ------
    ParamError
        for a missing POSCAR, unknown cell type or missing lattice constant.
    """
    if param["from_poscar"]:
        path = base_dir / (param["from_poscar_path"] or "")
        if not path.is_file():
            raise ParamError(f"from_poscar_path = {param['from_poscar_path']!r}: no such file under {base_dir}")
        return ase.io.read(path, format="vasp")
    cell_type, latt, elements = param["cell_type"], param["latt"], param["elements"]
    if cell_type not in CELL_TYPES:
        raise ParamError(f"cell_type = {cell_type!r}: allowed {', '.join(CELL_TYPES)} (or from_poscar: true)")
    if not latt or latt <= 0 or not elements:
        raise ParamError(f"latt = {latt}, elements = {elements}: cell_type needs a lattice constant (Å) and an element")
    if cell_type == "hcp":
        return ase.build.bulk(elements[0], "hcp", a=latt, c=latt * math.sqrt(8 / 3))
    return ase.build.bulk(elements[0], cell_type, a=latt, cubic=True)


def out_dir_name(param: dict) -> str:
    """``<elements>.<cell_type or POSCAR>.<NNxNNxNN>`` (dpgen_lite's route)."""
    elements = "".join(param["elements"] or [])
    kind = "POSCAR" if param["from_poscar"] else param["cell_type"]
    return f"{elements}.{kind}." + "x".join(f"{n:02d}" for n in param["super_cell"])


def scaled_perturbed(param: dict, base_dir: Path) -> list[tuple[float, dpdata.System]]:
    """For each scale: the supercell scaled by it, then the unperturbed frame followed by
    ``pert_numb`` perturbed frames (seeded by ``random_seed``)."""
    sc = param["super_cell"]
    if len(sc) != 3 or any(int(n) < 1 for n in sc):
        raise ParamError(f"super_cell = {sc}: need 3 positive integers")
    cell = unit_cell(param, base_dir).repeat([int(n) for n in sc])
    missing = sorted(set(cell.get_chemical_symbols()) - set(param["type_map"]))
    if missing:
        raise ParamError(f"type_map = {param['type_map']}: the structure has {missing}; add them to type_map")
    np.random.seed(param["random_seed"])  # dpdata's perturb draws from numpy's global generator
    out = []
    for s in param["scale"]:
        atoms = cell.copy()
        atoms.set_cell(cell.cell * s, scale_atoms=True)
        system = dpdata.System(atoms, fmt="ase/structure", type_map=param["type_map"])
        perturbed = system.perturb(param["pert_numb"], param["pert_box"], param["pert_atom"], "normal")
        system.append(perturbed)
        out.append((s, system))
    return out


def _init_bulk_lite(param: dict, mdata: dict, base_dir: Path) -> Path:
    out = base_dir / out_dir_name(param)
    frames = scaled_perturbed(param, base_dir)
    natoms = frames[0][1].get_natoms()
    sys_name = f"sys-{natoms:04d}"
    for s, system in frames:
        for k in range(system.get_nframes()):
            folder = out / SCALE_PERT / sys_name / f"scale-{s:.3f}" / f"{k:06d}"
            folder.mkdir(parents=True, exist_ok=True)
            system.sub_system([k]).to("vasp/poscar", str(folder / "POSCAR"))
    ctx = Context(param, mdata, base_dir)
    work = out / LABEL
    style = fp_style(param, base_dir)
    if not (work / MADE).is_file():
        shutil.rmtree(work, ignore_errors=True)
        tasks = [(0, system.sub_system([k]), {"scale": s, "frame": k})
                 for s, system in frames for k in range(system.get_nframes())]
        write_fp_tasks(style, tasks, work)
        (work / MADE).touch()
    log.info("init_bulk: %d frames of %d atoms to label in %s", sum(f.get_nframes() for _, f in frames), natoms, work)
    run_fp_tasks(ctx, str(work.relative_to(base_dir)))
    collect_labels(style, work, param["ratio_failed"])
    data = out / MD / sys_name / "deepmd"
    shutil.rmtree(data, ignore_errors=True)
    shutil.copytree(work / "data.000", data)
    log.info("init_bulk: training data written to %s", data.relative_to(base_dir))
    return data


# --------------------------------------------------------------------------------------
# DP-GEN's staged route
# --------------------------------------------------------------------------------------


def dpgen_out_dir_name(param: dict) -> str:
    """DP-GEN's ``<out>``: ``<POSCAR file name>.<NNxNNxNN>`` or ``<elements, lower case>.<cell_type>.<NNxNNxNN>``."""
    cells = "x".join(f"{int(n):02d}" for n in param["super_cell"])
    if param["from_poscar"]:
        return f"{Path(param['from_poscar_path']).name}.{cells}"
    return "".join(e.lower() for e in param["elements"]) + f".{param['cell_type']}.{cells}"


def dpgen_unit_cell(cell_type: str, latt: float, element: str) -> ase.Atoms:
    """DP-GEN's unit cells: fcc / bcc / sc cubic (a = latt), hcp 2 atoms (a = latt/√2, ideal c/a),
    diamond 2-atom primitive cell (vectors latt x (0,1,1), (1,0,1), (1,1,0))."""
    if cell_type == "hcp":
        a = latt / math.sqrt(2)
        cell = a * np.array([[1, 0, 0], [0.5, math.sqrt(3) / 2, 0], [0, 0, 2 * math.sqrt(2 / 3)]])
        frac = [[0, 0, 0], [1 / 3, 1 / 3, 1 / 2]]
    elif cell_type == "diamond":
        cell = latt * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]], dtype=float)
        frac = [[1 / 8] * 3, [7 / 8] * 3]
    else:
        cell = latt * np.eye(3)
        frac = {"fcc": [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
                "bcc": [[0, 0, 0], [0.5, 0.5, 0.5]], "sc": [[0, 0, 0]]}[cell_type]
    return ase.Atoms([element] * len(frac), scaled_positions=frac, cell=cell, pbc=True)


def compositions(natoms: int, n_elements: int) -> list[tuple[int, ...]]:
    """Every split of ``natoms`` sites among ``n_elements`` elements, each at least one (DP-GEN's
    ``place_element``)."""
    if n_elements == 1:
        return [(natoms,)] if natoms >= 1 else []
    return [(k, *rest) for k in range(1, natoms) for rest in compositions(natoms - k, n_elements - 1)]


def _system(names: list[str], counts, cell, coords) -> dpdata.System:
    """One frame, atoms grouped by ``names`` in order with ``counts`` each (Å)."""
    types = np.repeat(np.arange(len(names)), counts)
    return dpdata.System(data={"atom_names": list(names), "atom_numbs": [int(c) for c in counts],
                               "atom_types": types, "cells": np.asarray(cell, float)[None],
                               "coords": np.asarray(coords, float)[None], "orig": np.zeros(3), "nopbc": False})


def _in_order(system: dpdata.System, elements: list[str]) -> dpdata.System:
    """A copy with ``atom_names == elements`` and atoms grouped in that order."""
    system = system.copy()
    system.check_type_map(list(elements))
    system.sort_atom_types()
    return system


def write_poscar(system: dpdata.System, path: Path) -> None:
    """POSCAR of one frame, atoms grouped, elements without atoms left out."""
    system = system.copy()
    empty = [n for n, c in zip(system["atom_names"], system["atom_numbs"]) if c == 0]
    if empty:
        system = system.remove_atom_names(empty)
    system.sort_atom_types()
    path.parent.mkdir(parents=True, exist_ok=True)
    system.to("vasp/poscar", str(path))


def read_structure(path: Path, elements: list[str], fmt: str = "vasp/poscar") -> dpdata.System:
    """A POSCAR (or ABACUS STRU) in ``elements`` order.  A VASP 4 POSCAR (no species line) takes
    ``elements`` as its species.

    Raises
    ------
    ParamError
        unreadable file, or species not in ``elements``.
    """
    try:
        system = dpdata.System(str(path), fmt=fmt)
    except Exception as err:
        lines = Path(path).read_text().splitlines()
        counts = lines[5].split() if len(lines) > 6 else []
        if fmt != "vasp/poscar" or not counts or not all(c.isdigit() for c in counts) or len(counts) != len(elements):
            raise ParamError(f"{path}: not a readable structure ({type(err).__name__}: {err})") from None
        fixed = Path(path).with_name(Path(path).name + ".species")
        fixed.write_text("\n".join(lines[:5] + [" ".join(elements)] + lines[5:]) + "\n")
        system = dpdata.System(str(fixed), fmt=fmt)
    extra = [n for n, c in zip(system["atom_names"], system["atom_numbs"]) if c > 0 and n not in elements]
    if extra:
        raise ParamError(f"{path} holds {extra}, not in elements = {elements}; add them to elements")
    return _in_order(system, elements)


def _write_record(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(record, indent=1))


def _pending(path: Path, what: str) -> dict | None:
    """The record of a stage at ``path`` ({} when none), or None when the stage finished before."""
    rec = read_json(path) or {}
    if rec.get("done"):
        log.info("init_bulk: %s finished before: skipped", what)
        return None
    return rec


def _fingerprints(p: dict, style: str) -> dict[str, dict]:
    """The values each stage's output depends on (a rerun with other values is refused)."""
    return {
        "place": {k: p[k] for k in ("elements", "from_poscar", "from_poscar_path", "cell_type", "latt",
                                    "super_cell", "random_seed")},
        "relax": {"fp_style": style},
        "pert": {k: p[k] for k in ("scale", "pert_numb", "pert_box", "pert_atom", "skip_relax", "random_seed")},
        "md": {"fp_style": style},
    }


def place_elements(p: dict, base_dir: Path, out: Path) -> dict[str, dpdata.System]:
    """``00.place_ele``: the supercell and one ``sys-*/POSCAR`` per system (made once)."""
    folder = out / PLACE
    elements = p["elements"]
    if (read_json(folder / PLACE_REC) or {}).get("done"):
        return {d.name: read_structure(d / "POSCAR", elements) for d in sorted(folder.glob("sys-*"))}
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(p["random_seed"])
    systems = {}
    if p["from_poscar"]:
        src = base_dir / p["from_poscar_path"]
        fmt = "abacus/stru" if p["init_fp_style"] == "ABACUS" else "vasp/poscar"
        shutil.copyfile(src, folder / "POSCAR.copied")
        cell = read_structure(folder / "POSCAR.copied", elements, fmt)
        atoms = cell.to("ase/structure")[0].repeat([int(n) for n in p["super_cell"]])
        supercell = _in_order(dpdata.System(atoms, fmt="ase/structure"), elements)
        # DP-GEN names the system by the counts of the file's species, in the file's order
        counts = dict(zip(supercell["atom_names"], supercell["atom_numbs"]))
        order = [n for n in _species(folder / "POSCAR.copied", fmt, elements) if counts.get(n)]
        name = "sys-" + "-".join(f"{counts[n]:04d}" for n in order)
        write_poscar(supercell, folder / "POSCAR")
        systems[name] = supercell
    else:
        atoms = dpgen_unit_cell(p["cell_type"], float(p["latt"]), elements[0]).repeat([int(n) for n in p["super_cell"]])
        write_poscar(_in_order(dpdata.System(atoms, fmt="ase/structure"), elements), folder / "POSCAR")
        for comp in compositions(len(atoms), len(elements)):
            coords = atoms.positions[rng.permutation(len(atoms))]
            systems["sys-" + "-".join(f"{c:04d}" for c in comp)] = _system(elements, comp, atoms.cell.array, coords)
    for name, system in systems.items():
        write_poscar(system, folder / name / "POSCAR")
    _write_record(folder / PLACE_REC, {**_fingerprints(p, "")["place"], "done": True, "systems": sorted(systems)})
    log.info("init_bulk: %d system(s) in %s: %s", len(systems), folder, ", ".join(sorted(systems)))
    return systems


def _species(path: Path, fmt: str, elements: list[str]) -> list[str]:
    """Species of a structure file in its own order (a VASP 4 POSCAR: ``elements``)."""
    if fmt != "vasp/poscar":
        return list(dpdata.System(str(path), fmt=fmt)["atom_names"])
    lines = Path(path).read_text().splitlines()
    names = lines[5].split() if len(lines) > 5 else []
    return elements if all(n.isdigit() for n in names) else names


def _stage_conf(ctx: Context, style) -> tuple[dict, str]:
    conf = ctx.stage_conf("fp")
    return conf, conf["command"] or style.default_command()


def _run(ctx: Context, style, folder: Path, tasks: dict[str, list[str]], backward: list[str]) -> list[str]:
    """Run ``tasks`` (path relative to ``folder`` -> forward files) through dpdispatcher; return the failed ones."""
    conf, command = _stage_conf(ctx, style)
    specs = [TaskSpec(path=t, command=command, forward_files=files, backward_files=backward,
                      outlog="fp.log", errlog="fp.err") for t, files in sorted(tasks.items())]
    try:
        run_tasks(conf, ctx.work_dir, str(folder.relative_to(ctx.work_dir)), specs, continue_on_failure=True)
    except TaskFailures as err:
        log.warning("%s: %s", folder, err)
        return err.failed
    return []


def stage_relax(ctx: Context, style, p: dict, out: Path, systems: dict[str, dpdata.System]) -> None:
    """Stage 1: relax every ``00.place_ele/sys-*`` and leave its ``CONTCAR``."""
    folder = out / PLACE
    rec = _pending(folder / RELAX_REC, "stage 1 (relax)")
    if rec is None:
        return
    if not rec.get("tasks"):
        tasks = {name: style.write_relax_inputs(system, folder / name) for name, system in sorted(systems.items())}
        rec = {"fp_style": style.name, "tasks": tasks, "done": False}
        _write_record(folder / RELAX_REC, rec)
    log.info("init_bulk: stage 1: relaxing %d system(s) with %s in %s", len(rec["tasks"]), style.name, folder)
    _run(ctx, style, folder, rec["tasks"], style.relax_backward_files())
    failed = []
    for name in sorted(rec["tasks"]):
        try:
            relaxed = style.read_relaxed(folder / name)
        except FpTaskFailed as err:
            failed.append(str(err))
            continue
        if not (folder / name / "CONTCAR").is_file():
            write_poscar(relaxed, folder / name / "CONTCAR")
    if failed:
        raise RuntimeError("init_bulk stage 1: relaxation failed: " + "; ".join(failed)
                           + ". Fix the cause and rerun: finished relaxations are kept")
    _write_record(folder / RELAX_REC, {**rec, "done": True})


def stage_scale_perturb(p: dict, out: Path) -> None:
    """Stage 2: ``01.scale_pert/sys-*/scale-<s>/<k>/POSCAR`` from the (relaxed) systems."""
    folder = out / SCALE_PERT
    if (read_json(folder / PERT_REC) or {}).get("done"):
        log.info("init_bulk: stage 2 (scale and perturb) finished before: skipped")
        return
    elements = p["elements"]
    rng = np.random.default_rng([p["random_seed"], 2])
    np.random.seed(p["random_seed"])  # dpdata's perturb draws from numpy's global generator
    systems = sorted(d.name for d in (out / PLACE).glob("sys-*") if d.is_dir())
    for name in systems:
        src = out / PLACE / name / ("POSCAR" if p["skip_relax"] else "CONTCAR")
        if not src.is_file():
            raise RuntimeError(f"init_bulk stage 2: {src} not found; run stage 1 (relax) first or set skip_relax: true")
        base = read_structure(src, elements)
        for s in p["scale"]:
            scaled = base.copy()
            scaled.data["cells"] = base["cells"] * s
            scaled.data["coords"] = base["coords"] * s
            where = folder / name / f"scale-{s:.3f}"
            write_poscar(scaled, where / "POSCAR")
            frames = scaled.copy()
            if p["pert_numb"] > 0:
                frames.append(scaled.perturb(p["pert_numb"], p["pert_box"], p["pert_atom"], "uniform"))
            for k in range(frames.get_nframes()):
                frame = frames.sub_system([k])
                if not p["from_poscar"]:  # DP-GEN shuffles the species over the sites of each copy
                    frame.data["coords"] = frame["coords"][:, rng.permutation(frame.get_natoms())]
                write_poscar(frame, where / f"{k:06d}" / "POSCAR")
    _write_record(folder / PERT_REC, {**_fingerprints(p, "")["pert"], "done": True})
    log.info("init_bulk: stage 2: %d system(s) x %d scale(s) x %d frame(s) in %s", len(systems), len(p["scale"]),
             p["pert_numb"] + 1, folder)


def _frame_dirs(p: dict, root: Path) -> list[Path]:
    """``root/sys-*/scale-<s>/<k>`` for DP-GEN's scales and perturbations, where present."""
    out = []
    for sys_dir in sorted(d for d in root.glob("sys-*") if d.is_dir()):
        for s in p["scale"]:
            for k in range(p["pert_numb"] + 1):
                d = sys_dir / f"scale-{s:.3f}" / f"{k:06d}"
                if d.is_dir():
                    out.append(d)
    return out


def stage_md(ctx: Context, style, p: dict, out: Path) -> None:
    """Stage 3: an AIMD task in ``02.md/sys-*/scale-<s>/<k>`` from each frame of stage 2."""
    folder = out / MD
    rec = _pending(folder / MD_REC, "stage 3 (AIMD)")
    if rec is None:
        return
    if not rec.get("tasks"):
        nsteps = style.md_steps()
        tasks = {}
        for src in _frame_dirs(p, out / SCALE_PERT):
            rel = src.relative_to(out / SCALE_PERT)
            frame = read_structure(src / "POSCAR", p["elements"])
            tasks[str(rel)] = style.write_md_inputs(frame, folder / rel, relax_dir=out / PLACE / rel.parts[0])
            if not (folder / rel / "POSCAR").is_file():  # DP-GEN's layout: each task holds its frame
                shutil.copyfile(src / "POSCAR", folder / rel / "POSCAR")
        rec = {"fp_style": style.name, "nsteps": nsteps, "tasks": tasks, "done": False}
        _write_record(folder / MD_REC, rec)
    log.info("init_bulk: stage 3: %d AIMD task(s) of %d step(s) with %s in %s", len(rec["tasks"]), rec["nsteps"],
             style.name, folder)
    failed = _run(ctx, style, folder, rec["tasks"], style.md_backward_files())
    # with failed tasks the stage is not done: a rerun retries them (finished ones are recovered)
    _write_record(folder / MD_REC, {**rec, "ran": True, "done": not failed, "failed": failed})


def write_data(system: dpdata.LabeledSystem, path: Path) -> None:
    """``path`` as DP-GEN's ``deepmd`` folder: deepmd/raw and deepmd/npy (one set), replacing it."""
    shutil.rmtree(path, ignore_errors=True)
    system.to("deepmd/raw", str(path))
    system.to("deepmd/npy", str(path), set_size=system.get_nframes())


def _joined(frames: list[dpdata.LabeledSystem], where: str) -> dpdata.LabeledSystem:
    if any("virials" not in f.data for f in frames) and any("virials" in f.data for f in frames):
        log.warning("%s: some frames have no virial (stress not computed): virials dropped for all", where)
        for f in frames:
            f.data.pop("virials", None)
    out = frames[0].copy()
    for f in frames[1:]:
        out.append(f)
    return out


def stage_collect(style, p: dict, out: Path) -> list[Path]:
    """Stage 4 after AIMD: ``02.md/sys-*/deepmd`` from every valid AIMD task, at most ``coll_ndata`` frames."""
    rec = read_json(out / MD / MD_REC) or {}
    nsteps = rec.get("nsteps")
    if nsteps is None:
        raise RuntimeError(f"init_bulk stage 4: {out / MD / MD_REC} missing: run stage 3 first")
    written = []
    for sys_dir in sorted(d for d in (out / MD).glob("sys-*") if d.is_dir()):
        frames, skipped = [], []
        for task in _frame_dirs(p, out / MD):
            if task.parent.parent != sys_dir:
                continue
            try:
                frames.append(style.read_md(task, nsteps))
            except FpTaskFailed as err:
                skipped.append(str(err))
                log.warning("init_bulk stage 4: left out: %s", err)
        if not frames:
            raise RuntimeError(f"init_bulk stage 4: {sys_dir}: no valid AIMD task (" + "; ".join(skipped)
                               + "); check that the AIMD ran correctly")
        data = _joined(frames, str(sys_dir))
        if p["coll_ndata"] is not None and data.get_nframes() > p["coll_ndata"]:
            data = data.sub_system(np.arange(p["coll_ndata"]))
        write_data(data, sys_dir / "deepmd")
        written.append(sys_dir / "deepmd")
        log.info("init_bulk: stage 4: %d frames from %d task(s) (%d left out) in %s", data.get_nframes(),
                 len(frames), len(skipped), sys_dir / "deepmd")
    return written


def stage_label(ctx: Context, style, p: dict, out: Path) -> list[Path]:
    """Stage 4 without AIMD: label every frame of stage 2 with single points (``<out>/02.fp``),
    then write ``02.md/sys-*/deepmd`` (at most ``coll_ndata`` frames each)."""
    work = out / LABEL
    systems = sorted(d.name for d in (out / SCALE_PERT).glob("sys-*") if d.is_dir())
    if not (work / MADE).is_file():
        shutil.rmtree(work, ignore_errors=True)
        tasks = []
        for src in _frame_dirs(p, out / SCALE_PERT):
            rel = src.relative_to(out / SCALE_PERT)
            frame = read_structure(src / "POSCAR", p["elements"])
            frame.check_type_map(list(p["type_map"]))
            tasks.append((systems.index(rel.parts[0]), frame, {"frame": str(rel)}))
        write_fp_tasks(style, tasks, work)
        (work / MADE).touch()
    log.info("init_bulk: stage 4: labelling the frames of %d system(s) with %s in %s", len(systems), style.name, work)
    run_fp_tasks(ctx, str(work.relative_to(ctx.work_dir)))
    collect_labels(style, work, p["ratio_failed"])
    written = []
    for idx, name in enumerate(systems):
        src = work / f"data.{idx:03d}"
        if not (src / "type.raw").is_file():
            log.warning("init_bulk: stage 4: no labelled frame of %s", name)
            continue
        data = dpdata.LabeledSystem(str(src), fmt="deepmd/npy", type_map=list(p["type_map"]))
        if p["coll_ndata"] is not None and data.get_nframes() > p["coll_ndata"]:
            data = data.sub_system(np.arange(p["coll_ndata"]))
        write_data(data, out / MD / name / "deepmd")
        written.append(out / MD / name / "deepmd")
    return written


def _init_bulk_stages(p: dict, mdata: dict, base_dir: Path) -> list[Path]:
    out = base_dir / dpgen_out_dir_name(p)
    style = get_style(stage_style_name(p))(p, base_dir)
    ctx = Context(p, mdata, base_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "param.json").write_text(json.dumps(p, indent=1))
    log.info("init_bulk: DP-GEN's stages %s with %s in %s", p["stages"], style.name, out)
    systems = place_elements(p, base_dir, out)
    written: list[Path] = []
    for stage in p["stages"]:
        log.info("init_bulk: stage %d (%s)", stage, STAGE_NAMES[stage])
        if stage == 1:
            stage_relax(ctx, style, p, out, systems)
        elif stage == 2:
            stage_scale_perturb(p, out)
        elif stage == 3:
            stage_md(ctx, style, p, out)
        elif (read_json(out / MD / MD_REC) or {}).get("ran"):
            written = stage_collect(style, p, out)
        else:
            written = stage_label(ctx, style, p, out)
    for path in written:
        log.info("init_bulk: training data written to %s", path.relative_to(base_dir))
    return written


def init_bulk(param: dict, mdata: dict, base_dir: Path) -> list[Path]:
    """Build and label the starting data set; return the deepmd folders written (``init_data_sys``).

    Every key is checked first (:func:`check_init_bulk`).  Resumable: finished stages and
    finished dpdispatcher tasks are not run again.

    Raises
    ------
    ParamError
        for an invalid key (before any work).
    """
    base_dir = Path(base_dir)
    p = check_init_bulk(param, base_dir)
    if is_staged(p):
        return _init_bulk_stages(p, mdata, base_dir)
    return [_init_bulk_lite(p, mdata, base_dir)]
