"""Vacancy migration energy by the climbing-image nudged elastic band (NEB).

Method: Henkelman, Uberuaga and Jónsson, J. Chem. Phys. 113, 9901 (2000).  For every symmetry-distinct
site of the relaxed cell and every symmetry-distinct hop of a nearest neighbour into the vacancy
(hcp: the in-basal-plane and the out-of-plane hop), one task: the initial state (vacancy at the site)
and the final state (the neighbour moved into it) relaxed at fixed cell, then the band between them.
LAMMPS interactions run ``fix neb`` / ``neb`` (REPLICA package, one MPI partition per image,
:meth:`dpgen_lite.autotest.calculators.lammps.Lammps.write_neb_inputs`); ASE interactions run
``ase.mep.NEB`` (:func:`dpgen_lite.autotest.ase_task.run_neb`).  The migration energy (barrier) is
E_m = max_i E_i - E_0 (eV) over the relaxed band.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms
from ase.geometry import find_mic

from ..task import TaskFailed, TaskResult
from .base import ParamError, Property, _a, check_vector, fmt, register, supercell, table
from .vacancy import distinct_sites

#: file of the relaxed band (end points included, energy eV, forces eV/Å) written into each task folder
BAND_FILE = "band.extxyz"


@dataclass
class BandResult(TaskResult):
    """The highest image of a relaxed band (saved as the task's result), with the whole band.

    Attributes
    ----------
    band : the images, end points included, each a :class:`TaskResult` (energy eV, forces eV/Å)
    """

    band: list = field(default_factory=list)


def nearest_hops(atoms: Atoms, tol: float) -> list[dict]:
    """The symmetry-distinct hops of a nearest neighbour into a vacancy of the perfect crystal ``atoms``.

    Neighbours of each symmetry-distinct site (:func:`.vacancy.distinct_sites`) closer than
    ``(1 + tol)`` times the nearest distance (ASE ``neighbor_list``) are grouped into classes by the
    operations of the crystal's space group (spglib) that leave the site in place (up to a
    lattice vector): two hops are one class when such an operation maps one hop vector onto the other.

    Returns
    -------
    list[dict]
        per class, by site then distance: ``site`` (index in ``atoms``), ``element``, ``neighbour_element``,
        ``vector_frac`` (the hop vector from the site to the neighbour, fractions of ``atoms.cell``: of
        the class, the largest in lexicographic order, so that runs with other interactions name the
        same hop), ``distance_A``, ``multiplicity`` (neighbours in the class).
    """
    import spglib
    from ase.neighborlist import neighbor_list

    frac = atoms.get_scaled_positions()
    ops = spglib.get_symmetry((atoms.cell.array, frac, atoms.numbers), symprec=1e-3)
    rc = 1.5 * (1 + tol) * (atoms.get_volume() / len(atoms)) ** (1 / 3)
    first, second, gap, dist = neighbor_list("ijDd", atoms, rc)
    gap = np.linalg.solve(atoms.cell.array.T, gap.T).T  # fractions of the cell
    hops = []
    for site in distinct_sites(atoms):
        mine = first == site
        near = dist[mine] <= (1 + tol) * dist[mine].min()
        vectors = gap[mine][near]
        lengths, others = dist[mine][near], second[mine][near]
        moved = [frac[site] @ r.T + t - frac[site] for r, t in zip(ops["rotations"], ops["translations"])]
        stabilizer = [r for r, m in zip(ops["rotations"], moved) if np.allclose(m, np.round(m), atol=1e-3)]
        unassigned = list(range(len(vectors)))
        while unassigned:
            k = unassigned[0]
            orbit = [v @ r.T for r in stabilizer for v in vectors[k:k + 1]]
            members = [m for m in unassigned if any(np.allclose(vectors[m], o, atol=1e-3) for o in orbit)]
            unassigned = [m for m in unassigned if m not in members]
            k = max(members, key=lambda m: tuple(vectors[m].round(3)))  # the same member whatever the order
            hops.append({"site": int(site), "element": atoms[site].symbol,
                         "neighbour_element": atoms[int(others[k])].symbol,
                         "vector_frac": (vectors[k].round(6) + 0.0).tolist(), "distance_A": float(lengths[k]),
                         "multiplicity": len(members)})
    return sorted(hops, key=lambda h: (h["site"], round(h["distance_A"], 3), h["vector_frac"]))


def hop_end_points(cell_atoms: Atoms, size: list[int], hop: dict) -> tuple[Atoms, Atoms]:
    """Initial and final state of ``hop`` (:func:`nearest_hops`) in the supercell ``size`` of ``cell_atoms``:
    the site's atom removed, then the neighbour moved into the site (same atom order, same cell).

    Raises
    ------
    ParamError
        when the supercell is too small: the neighbour is the site itself, or the neighbour in the
        opposite direction too.
    """
    big = supercell(cell_atoms, size)
    site = hop["site"]  # ASE's repeat keeps the cell's atoms first
    vector = np.asarray(hop["vector_frac"]) @ cell_atoms.cell.array
    _, gaps = find_mic(big.positions - (big.positions[site] + vector), big.cell)
    target = int(np.argmin(gaps))
    _, back = find_mic(big.positions - (big.positions[site] - vector), big.cell)
    if target == site or int(np.argmin(back)) == target:
        raise ParamError(f"properties[neb].supercell = {size}: too small for the hop {hop['vector_frac']} "
                         f"(fractions of the cell) from site {site}: the neighbour and its opposite are one atom; "
                         "use at least 3 repetitions of a primitive cell (2 of a conventional cubic one)")
    initial = big.copy()
    del initial[site]
    final = initial.copy()
    moved = target - (target > site)
    final.positions[moved] -= vector
    final.wrap()
    return initial, final


def reaction_coordinate(images: list[Atoms]) -> np.ndarray:
    """Cumulative length (Å) of the path through ``images``: sum of the minimum-image 3N-vector
    distances between consecutive images; shape (n_images,), starting at 0."""
    steps = [np.linalg.norm(find_mic(b.positions - a.positions, a.cell)[0]) for a, b in zip(images, images[1:])]
    return np.concatenate([[0.0], np.cumsum(steps)])


@register
class Neb(Property):
    """Vacancy migration energy E_m (eV) by climbing-image NEB, per symmetry-distinct nearest-neighbour hop.

    Keys: ``supercell`` (3 ints, repetitions of the relaxed cell, default [3, 3, 3]), ``n_images``
    (intermediate images, default 5), ``climb`` (climbing image, default true), ``spring`` (eV/Å²,
    default 1.0), ``fmax`` (largest force on any atom of any image at convergence, eV/Å, default
    0.01), ``max_steps`` (FIRE steps per stage, default 2000), ``neighbour_tol`` (hops go to the
    neighbours closer than (1 + tol) x the nearest distance, default 0.1), ``init_confs`` /
    ``final_confs`` (instead of the hops: end-point files, relative to the structure's folder, in any
    format ASE reads by name, paired by position; their cells are multiples of the POSCAR's and are
    strained with it to the relaxed cell).  End points relax at fixed cell (``cal_setting`` relax_pos,
    etol, ftol, fmax, maxiter); relax_vol / relax_shape and cal_type static are refused.
    """

    name = "neb"
    not_derived = "a band starts from its end points, not from another task's final structure; tighten fmax instead"

    @classmethod
    def args(cls):
        return [
            _a("supercell", list, "repetitions of the relaxed cell", default=[3, 3, 3]),
            _a("n_images", int, "intermediate images of the band", default=5),
            _a("climb", bool, "climbing image (after a plain NEB stage)", default=True),
            _a("spring", float, "spring constant between images, eV/Å²", default=1.0),
            _a("fmax", float, "convergence: largest force on an atom of any image, eV/Å", default=0.01),
            _a("max_steps", int, "most FIRE steps of each stage", default=2000),
            _a("neighbour_tol", float, "hops go to neighbours within (1 + tol) x the nearest distance", default=0.1),
            _a("init_confs", [list, str], "initial end points (files relative to the structure's folder)",
               default=None),
            _a("final_confs", [list, str], "final end points, paired with init_confs", default=None),
        ]

    def check(self, structure):
        check_vector(self.conf, "supercell", 3)
        where = "properties[neb]"
        for key, ok, allowed in (("n_images", self.conf["n_images"] >= 1, "an integer >= 1"),
                                 ("spring", self.conf["spring"] > 0, "> 0 (eV/Å²)"),
                                 ("fmax", self.conf["fmax"] > 0, "> 0 (eV/Å)"),
                                 ("max_steps", self.conf["max_steps"] >= 1, "an integer >= 1"),
                                 ("neighbour_tol", self.conf["neighbour_tol"] >= 0, ">= 0")):
            if not ok:
                raise ParamError(f"{where}.{key} = {self.conf[key]!r}: must be {allowed}")
        setting = self.setting()
        if self.conf.get("cal_type") == "static" or not setting["relax_pos"]:
            raise ParamError(f"{where}: cal_type 'static' / cal_setting.relax_pos = false: NEB relaxes the end points "
                             "and the band; remove them")
        cell = [k for k in ("relax_vol", "relax_shape") if setting[k]]
        if cell:
            raise ParamError(f"{where}.cal_setting.{cell[0]} = true: the band needs one fixed cell; remove it")
        if (self.conf["init_confs"] is None) != (self.conf["final_confs"] is None):
            given = "init_confs" if self.conf["init_confs"] is not None else "final_confs"
            raise ParamError(f"{where}.{given} = {self.conf[given]!r} alone: give init_confs and final_confs together "
                             "(paired by position), or neither for the nearest-neighbour hops")
        if self.conf["init_confs"] is None:
            hops = nearest_hops(structure, self.conf["neighbour_tol"])
            for hop in hops:
                hop_end_points(structure, self.conf["supercell"], hop)

    def files(self, key: str) -> list[str]:
        """``init_confs`` or ``final_confs`` as a list ([] when not given)."""
        value = self.conf[key]
        return [value] if isinstance(value, str) else list(value or [])

    def pairs(self) -> list[tuple[str, str]]:
        """The user's end-point files as (init, final) pairs ([] without ``init_confs``)."""
        return list(zip(self.files("init_confs"), self.files("final_confs")))

    def check_files(self, conf_dir, structure):
        """Each pair of ``init_confs`` / ``final_confs`` readable, with the same atom count, elements
        in the same order and the same cell, a supercell of ``structure``'s.

        Raises
        ------
        ParamError
            naming the key, the file and the fix.
        """
        where = "properties[neb]"
        inits, finals = self.files("init_confs"), self.files("final_confs")
        if len(inits) != len(finals):
            raise ParamError(f"{where}: init_confs has {len(inits)} file(s), final_confs {len(finals)}: give one final "
                             "end point per initial one, in the same order")
        for k, (ini, fin) in enumerate(self.pairs()):
            atoms = {}
            for key, name in (("init_confs", ini), ("final_confs", fin)):
                path = Path(conf_dir) / name
                try:
                    atoms[key] = ase.io.read(path)
                except Exception as err:  # noqa: BLE001  (ASE raises many kinds for unreadable files)
                    raise ParamError(f"{where}.{key}[{k}] = {name!r}: cannot read {path} ({err}); give a structure "
                                     "file (POSCAR, .vasp, .extxyz, ...) relative to the structure's folder") from None
            a, b = atoms["init_confs"], atoms["final_confs"]
            if len(a) != len(b):
                raise ParamError(f"{where}.final_confs[{k}] = {fin!r} has {len(b)} atoms, init_confs[{k}] = {ini!r} "
                                 f"has {len(a)}: the end points of a band must hold the same atoms; remove or add "
                                 "atoms so that both hold the same number, in the same order")
            if a.get_chemical_symbols() != b.get_chemical_symbols():
                raise ParamError(f"{where}.final_confs[{k}] = {fin!r}: its elements, in atom order, differ from "
                                 f"init_confs[{k}] = {ini!r}; write both with the same atom order")
            if not np.allclose(a.cell.array, b.cell.array, atol=1e-4):
                raise ParamError(f"{where}.final_confs[{k}] = {fin!r}: its cell differs from init_confs[{k}] = "
                                 f"{ini!r}; the band needs one cell for both end points")
            self.repetitions(a, structure, f"{where}.init_confs[{k}] = {ini!r}")

    @staticmethod
    def repetitions(atoms: Atoms, structure: Atoms, where: str) -> np.ndarray:
        """Integer matrix M with ``atoms.cell = M @ structure.cell`` (rows = lattice vectors).

        Raises
        ------
        ParamError
            when the cell of ``atoms`` is not such a multiple.
        """
        m = np.linalg.solve(structure.cell.array.T, atoms.cell.array.T).T
        if not np.allclose(m, np.round(m), atol=1e-3) or round(abs(np.linalg.det(m))) == 0:
            raise ParamError(f"{where}: its cell is not a supercell of the structure's POSCAR cell (M = {m.round(3)}); "
                             "build the end points on that cell")
        return np.round(m)

    def end_points(self, relaxed: Atoms, poscar: Atoms, conf_dir: Path) -> list[tuple[Atoms, Atoms, dict]]:
        """(initial, final, metadata) of every band on the ``relaxed`` cell: the nearest-neighbour hops
        (:func:`nearest_hops`, :func:`hop_end_points`), or the pairs of ``init_confs`` / ``final_confs``
        (read from ``conf_dir``, their cells ``M @ poscar.cell`` made ``M @ relaxed.cell``, atoms scaled along)."""
        if not self.pairs():
            return [(*hop_end_points(relaxed, self.conf["supercell"], hop),
                     {"hop": f"{hop['element']}{hop['site']} -> [{', '.join(f'{x:.3g}' for x in hop['vector_frac'])}]",
                      **hop}) for hop in nearest_hops(relaxed, self.conf["neighbour_tol"])]
        ends = []
        for ini, fin in self.pairs():
            pair = [ase.io.read(Path(conf_dir) / name) for name in (ini, fin)]
            cell = self.repetitions(pair[0], poscar, ini) @ relaxed.cell.array
            for atoms in pair:
                atoms.set_cell(cell, scale_atoms=True)
            ends.append((*pair, {"hop": f"{ini} -> {fin}", "init": ini, "final": fin}))
        return ends

    def make(self, relaxed, folder):
        folder = Path(folder)
        tasks = []
        for k, (initial, final, meta) in enumerate(
                self.end_points(relaxed, ase.io.read(folder.parent / "POSCAR", format="vasp"), folder.parent)):
            name = f"final.{k:03d}.vasp"
            ase.io.write(folder / name, final, format="vasp", direct=True, sort=False)
            tasks.append((initial, {**meta, "final_file": name}))
        return tasks

    def structures(self, atoms, conf_dir):
        """Every band, end points included, unrelaxed: ``n_images`` images between the end points of
        :meth:`end_points` on ``atoms`` by IDPP interpolation (ASE)."""
        from ase.mep import NEB
        bands = []
        for initial, final, _ in self.end_points(atoms, atoms, conf_dir):
            images = [initial, *(initial.copy() for _ in range(self.conf["n_images"])), final]
            NEB(images, method="improvedtangent").interpolate(method="idpp", mic=True)
            bands += images
        return bands

    def task_setting(self, meta):
        keys = {"n_images": "images", "climb": "climb", "spring": "spring", "fmax": "fmax", "max_steps": "steps"}
        return {**self.setting(), "neb": {v: self.conf[k] for k, v in keys.items()}}

    def write_inputs(self, calc, task_dir, atoms, setting, meta):
        final = ase.io.read(Path(task_dir).parent / meta["final_file"], format="vasp")
        return calc.write_neb_inputs(task_dir, atoms, final, setting)

    def task_command(self, calc, stage_command, meta):
        return calc.neb_command(stage_command, self.conf["n_images"] + 2)

    def task_backward_files(self, calc, meta):
        return calc.neb_backward_files(self.conf["n_images"] + 2)

    def read_result(self, calc, task_dir):
        """The band (:meth:`Calculator.read_neb`), written as ``band.extxyz`` into the task folder; the
        result is its highest image (a :class:`BandResult`).

        Raises
        ------
        TaskFailed
            for a missing band or a non-finite energy or force.
        """
        from ase.calculators.singlepoint import SinglePointCalculator
        band = calc.read_neb(task_dir)
        for image in band:
            if not (np.isfinite(image.energy) and np.all(np.isfinite(image.forces))):
                raise TaskFailed(f"{task_dir}: non-finite energy or forces in the band")
        frames = []
        for image in band:
            atoms = image.atoms.copy()
            atoms.calc = SinglePointCalculator(atoms, energy=image.energy, forces=image.forces)
            frames.append(atoms)
        ase.io.write(Path(task_dir) / BAND_FILE, frames, format="extxyz")
        top = max(band, key=lambda r: r.energy)
        return BandResult(top.atoms, top.energy, top.stress, top.forces, band=band)

    def post(self, results, metas, relaxed, folder):
        hops = []
        for k, (res, meta) in enumerate(zip(results, metas)):
            energy = np.array([r.energy for r in res.band])
            rc = reaction_coordinate([r.atoms for r in res.band])
            rel = energy - energy[0]
            hop = {**{key: v for key, v in meta.items() if key != "final_file"},
                   "natoms": len(res.atoms), "barrier_eV": float(rel.max()),
                   "reverse_barrier_eV": float(energy.max() - energy[-1]), "saddle_image": int(rel.argmax()),
                   "energies_eV": rel.tolist(), "reaction_coordinate_A": rc.tolist(),
                   "band_file": f"task.{k:06d}/{BAND_FILE}", "plot": f"profile.{k:03d}.png"}
            self.draw(hop, Path(folder) / hop["plot"])
            hops.append(hop)
        return {"hops": hops, "barrier_eV": min(h["barrier_eV"] for h in hops)}

    @staticmethod
    def draw(hop: dict, path: Path) -> None:
        """The energy profile of ``hop`` (eV against reaction coordinate, Å) as a PNG (matplotlib, Agg canvas)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        fig = Figure(figsize=(5, 3.5), layout="constrained")
        FigureCanvasAgg(fig)
        Neb.plot(fig.add_subplot(), {"hops": [hop]}, hop["hop"])
        fig.savefig(path, dpi=110)

    def report(self, res):
        rows = [(h["hop"], fmt(h["distance_A"], 3) if "distance_A" in h else "-", h.get("multiplicity", "-"),
                 fmt(h["barrier_eV"]), fmt(h["reverse_barrier_eV"]), len(h["energies_eV"])) for h in res["hops"]]
        return ("Vacancy migration energy (climbing-image NEB)\n"
                + table(rows, ("hop", "distance (Å)", "multiplicity", "E_m (eV)", "E_m reverse (eV)", "images")))

    @classmethod
    def scalars(cls, res):
        return {f"vacancy E_m {h['hop']} (eV)": h["barrier_eV"] for h in res["hops"]}

    @classmethod
    def plot(cls, ax, res, label):
        for hop in res["hops"]:
            ax.plot(hop["reaction_coordinate_A"], hop["energies_eV"], "o-",
                    label=label if len(res["hops"]) == 1 else f"{label}: {hop['hop']}")
        ax.set_xlabel("reaction coordinate (Å)")
        ax.set_ylabel("E - E_initial (eV)")
        ax.legend(fontsize="small")
        return True
