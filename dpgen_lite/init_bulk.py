"""``dpgen init_bulk``: a labelled starting data set for a bulk crystal, as DP-GEN's.

Supercell of a lattice (``cell_type``, ``latt``) or of a POSCAR, isotropically scaled
(``scale``), perturbed (``pert_numb`` copies, box by up to ``pert_box``, atoms by up to
``pert_atom`` Å, with dpdata's ``perturb``), labelled with the run's fp style.
Layout (DP-GEN's): ``<elements>.<cell_type>.<NNxNNxNN>/01.scale_pert/sys-<natoms>/scale-<s>/<k>/POSCAR``
and ``.../02.md/sys-<natoms>/deepmd`` (deepmd/npy), the folder to give as ``init_data_sys``.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import ase.build
import ase.io
import dpdata
import numpy as np
from dargs import Argument

from .context import Context, log
from .label.stage import collect_labels, fp_style, run_fp_tasks, write_fp_tasks
from .params import ParamError, arg

CELL_TYPES = ("fcc", "bcc", "hcp", "sc", "diamond")
MADE = "tasks.made"


def init_bulk_args() -> list[Argument]:
    """Keys of an init_bulk ``param.json`` (the fp style's keys come from the style)."""
    return [
        arg("type_map", list, "element of each atom type"),
        arg("elements", list, "elements of the lattice sites (cell_type route)", default=None),
        arg("cell_type", str, "fcc, bcc, hcp, sc or diamond", default=None),
        arg("latt", float, "lattice constant, Å", default=None),
        arg("from_poscar", bool, "start from from_poscar_path instead of cell_type", default=False),
        arg("from_poscar_path", str, "POSCAR of the unit cell", default=None),
        arg("super_cell", list, "supercell repetitions, 3 integers"),
        arg("scale", list, "isotropic length scales applied to the supercell", default=[1.0]),
        arg("pert_numb", int, "perturbed copies of each scaled cell"),
        arg("pert_box", float, "largest relative box perturbation", default=0.03),
        arg("pert_atom", float, "largest atom displacement, Å", default=0.01),
        arg("random_seed", int, "seed of the perturbations", default=2020),
    ]


def check_init_bulk(param: dict, base_dir: Path) -> None:
    """Cross-key checks: the unit cell can be built and its elements are in ``type_map``.

    Raises
    ------
    ParamError
        naming the key, the value and the fix.
    """
    cell = unit_cell(param, base_dir)
    missing = sorted(set(cell.get_chemical_symbols()) - set(param["type_map"]))
    if missing:
        raise ParamError(f"type_map = {param['type_map']}: the structure has {missing}; add them to type_map")


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
    """``<elements>.<cell_type or POSCAR>.<NNxNNxNN>`` (DP-GEN's name)."""
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


def init_bulk(param: dict, mdata: dict, base_dir: Path) -> Path:
    """Build and label the starting data set; return the deepmd/npy folder.

    Resumable: task folders are made once (``tasks.made``), dpdispatcher recovers the
    labelling jobs, labels are collected at the end.
    """
    out = base_dir / out_dir_name(param)
    frames = scaled_perturbed(param, base_dir)
    natoms = frames[0][1].get_natoms()
    sys_name = f"sys-{natoms:04d}"
    for s, system in frames:
        for k in range(system.get_nframes()):
            folder = out / "01.scale_pert" / sys_name / f"scale-{s:.3f}" / f"{k:06d}"
            folder.mkdir(parents=True, exist_ok=True)
            system.sub_system([k]).to("vasp/poscar", str(folder / "POSCAR"))
    ctx = Context(param, mdata, base_dir)
    work = out / "02.fp"
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
    data = out / "02.md" / sys_name / "deepmd"
    shutil.rmtree(data, ignore_errors=True)
    shutil.copytree(work / "data.000", data)
    log.info("init_bulk: training data written to %s", data.relative_to(base_dir))
    return data
