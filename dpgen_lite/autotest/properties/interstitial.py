"""Interstitial formation energies at the standard sites of fcc, bcc and hcp lattices."""

from __future__ import annotations

import numpy as np

from ...params import ParamError
from .base import Property, _a, check_vector, e0_per_atom, fmt, register, supercell, table

#: per lattice: (spacegroup number, atoms in the conventional standard cell), the atoms' fractional
#: coordinates in the setting of the table, and the sites in fractional coordinates of that cell: a
#: point (one added atom) or, for dumbbells, the lattice atom replaced and the two atoms' offsets
#: (fractions of the conventional cell)
LATTICES = {
    "fcc": ((225, 4), [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]], {
        "octahedral": [0.5, 0.5, 0.5], "tetrahedral": [0.25, 0.25, 0.25],
        "dumbbell_100": ([0, 0, 0], [0.3, 0, 0])}),
    "bcc": ((229, 2), [[0, 0, 0], [0.5, 0.5, 0.5]], {
        "octahedral": [0.5, 0.5, 0.0], "tetrahedral": [0.5, 0.25, 0.0],
        "dumbbell_110": ([0, 0, 0], [0.25, 0.25, 0])}),
    # APEX's eight hcp sites (Li et al., Comput. Phys. Commun. 2024, after Vérité et al., PRB 87, 144110 (2013)):
    # octahedral, tetrahedral, crowdion (mid-way to an out-of-plane neighbour), split dumbbell along c,
    # and their basal-plane counterparts
    "hcp": ((194, 2), [[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]], {
        "O": [0.0, 0.0, 0.0], "BO": [0.0, 0.0, 0.25], "T": [1 / 3, 2 / 3, 0.625], "BT": [2 / 3, 1 / 3, 0.25],
        "C": [0.5, 0.5, 0.5], "BC": [5 / 6, 2 / 3, 0.25],
        "S": ([1 / 3, 2 / 3, 0.25], [0, 0, 0.2]), "BS": ([1 / 3, 2 / 3, 0.25], [0.3, 0, 0])}),
}


def symmetry_images(atoms, host) -> list[np.ndarray]:
    """Cartesian positions (Å) of ``atoms`` under every symmetry operation of the perfect ``host``
    (same cell; spglib's rotations and translations, lattice translations of the supercell
    included): the equivalent placements of a defect, each once (operations of the site's own
    symmetry give the same set of positions, in another order)."""
    import spglib
    ops = spglib.get_symmetry((host.cell.array, host.get_scaled_positions(), host.numbers), symprec=1e-3)
    frac = atoms.get_scaled_positions(wrap=False)
    images, seen = [], set()
    for r, t in zip(ops["rotations"], ops["translations"]):
        moved = frac @ r.T + t
        key = np.round(moved % 1.0, 4) % 1.0
        key = key[np.lexsort(key.T[::-1])].tobytes()
        if key not in seen:
            seen.add(key)
            images.append(moved @ atoms.cell.array)
    return images


def nearest_template(atoms, templates: dict, host) -> tuple[str, float]:
    """Name and distance (the score, Å) of the structure of ``templates`` (``{name: Atoms}``, the cell and atom count of
    ``atoms``) nearest to ``atoms``, over every placement of each that the symmetry of the
    perfect ``host`` makes equivalent (:func:`symmetry_images`): atoms matched one to one
    (Hungarian assignment on minimum-image distances, scipy ``linear_sum_assignment``) after
    removing the mean drift, scored by the largest displacement (Å).  Tells where a relaxed
    interstitial went."""
    from scipy.optimize import linear_sum_assignment
    cell = atoms.cell.array
    inv = np.linalg.inv(cell)

    def mic(d: np.ndarray) -> np.ndarray:
        f = d @ inv
        return (f - np.round(f)) @ cell

    def score(ref: np.ndarray) -> float:
        d = atoms.positions[:, None, :] - ref[None, :, :]
        for _ in range(2):  # match, remove the mean drift, match again
            dist = np.linalg.norm(mic(d), axis=2)
            rows, cols = linear_sum_assignment(dist)
            d = d - mic(d[rows, cols]).mean(axis=0)
        return float(np.linalg.norm(mic(d[rows, cols]), axis=1).max())

    best = {name: min(score(p) for p in symmetry_images(t, host)) for name, t in templates.items()}
    name = min(best, key=best.get)
    return name, best[name]


def conventional(atoms):
    """(lattice name or None, conventional standard cell as ASE Atoms) via pymatgen ``SpacegroupAnalyzer``."""
    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
    sga = SpacegroupAnalyzer(AseAtomsAdaptor.get_structure(atoms), symprec=0.01)
    conv = sga.get_conventional_standard_structure()
    key = (sga.get_space_group_number(), len(conv))
    name = next((n for n, (k, _, _) in LATTICES.items() if k == key), None)
    return name, AseAtomsAdaptor.get_atoms(conv)


def origin_shift(conv, lattice: str) -> np.ndarray:
    """Fractional shift s such that the table's atoms of ``lattice`` + s are the atoms of ``conv``
    (pymatgen may put the origin elsewhere)."""
    basis = np.array(LATTICES[lattice][1])
    frac = conv.get_scaled_positions()
    for f in frac:
        s = f - basis[0]
        d = (basis[:, None, :] + s - frac[None, :, :] + 0.5) % 1 - 0.5
        if np.all(np.min(np.linalg.norm(d, axis=2), axis=1) < 1e-3):
            return s
    raise ValueError(f"structure does not match the {lattice} table")


@register
class Interstitial(Property):
    """E_f = E(N+1) - (N+1) e0, e0 the relaxed host energy per atom (eV; DP-GEN's definition, exact
    for self-interstitials, relative to the host's e0 for foreign ``insert_ele``).

    Keys: ``insert_ele`` (elements, default those of the structure), ``supercell`` (3 ints, of the
    conventional standard cell, default [2, 2, 2]), ``sites`` (names from :data:`LATTICES`, default
    all of the lattice), DP-GEN's ``conf_filters`` (``{"min_dist": Å}``: structures whose closest two
    atoms are nearer are left out) and ``bcc_self`` (DP-GEN's extra bcc self-interstitial cells:
    refused, choose ``sites``).  The structure must be fcc (Fm-3m), bcc (Im-3m) or hcp (P6_3/mmc),
    one element.
    """

    name = "interstitial"

    @classmethod
    def args(cls):
        return [_a("insert_ele", list, "elements inserted", default=None),
                _a("supercell", list, "repetitions of the conventional cell", default=[2, 2, 2]),
                _a("sites", list, "site names (default: all standard sites of the lattice)", default=None),
                _a("conf_filters", dict, "filters of the structures", default={},
                   sub_fields=[_a("min_dist", float, "smallest interatomic distance kept, Å", default=None)]),
                _a("bcc_self", bool, "DP-GEN's bcc self-interstitial set: refused", default=False)]

    def sites(self, lattice: str) -> dict:
        """The site table of ``lattice`` restricted to ``sites``."""
        table_ = LATTICES[lattice][2]
        return {k: table_[k] for k in (self.conf["sites"] or table_)}

    def check(self, structure):
        check_vector(self.conf, "supercell", 3)
        if self.conf["bcc_self"]:
            raise ParamError("properties[interstitial].bcc_self = True: refused: dpgen_lite computes the standard "
                             "sites of the lattice (bcc: octahedral, tetrahedral, dumbbell_110); remove bcc_self and "
                             "choose them with sites")
        lattice, _ = conventional(structure)
        if lattice is None or len(set(structure.get_chemical_symbols())) != 1:
            raise ParamError("properties[interstitial]: the structure is not a one-element fcc, bcc or hcp "
                             "crystal; standard interstitial sites are known for those only")
        bad = [s for s in (self.conf["sites"] or []) if s not in LATTICES[lattice][2]]
        if bad:
            raise ParamError(f"properties[interstitial].sites: {bad} unknown for {lattice}; allowed "
                             f"{', '.join(LATTICES[lattice][2])}")

    def make(self, relaxed, folder):
        lattice, conv = conventional(relaxed)
        size = np.array(self.conf["supercell"])
        shift = origin_shift(conv, lattice)
        tasks = []
        for ele in self.conf["insert_ele"] or sorted(set(relaxed.get_chemical_symbols())):
            for site, spec in self.sites(lattice).items():
                atoms = supercell(conv, list(size))
                if isinstance(spec, tuple):  # dumbbell around the lattice atom at spec[0]
                    centre, offset = (np.array(spec[0]) + shift) / size, np.array(spec[1]) / size
                    frac = atoms.get_scaled_positions()
                    i = int(np.argmin(np.linalg.norm((frac - centre + 0.5) % 1 - 0.5, axis=1)))
                    atoms.positions[i] = (centre - offset) @ atoms.cell.array
                    atoms.append(ele)
                    atoms.positions[-1] = (centre + offset) @ atoms.cell.array
                else:
                    atoms.append(ele)
                    atoms.positions[-1] = ((np.array(spec) + shift) / size) @ atoms.cell.array
                tasks.append((atoms, {"site": site, "element": ele, "lattice": lattice}))
        min_dist = self.conf["conf_filters"].get("min_dist")
        if min_dist is not None:
            tasks = [t for t in tasks if t[0].get_all_distances(mic=True)[np.triu_indices(len(t[0]), 1)].min()
                     >= min_dist]
            if not tasks:
                raise ParamError(f"properties[interstitial].conf_filters.min_dist = {min_dist}: every structure has "
                                 "two atoms nearer; lower min_dist or enlarge supercell")
        return tasks

    def post(self, results, metas, relaxed, folder):
        """Rows of ``site``, ``element``, ``natoms``, ``formation_energy_eV``, ``relaxed_site``
        (the site whose starting structure the relaxed one is nearest to, :func:`nearest_template`:
        another one where the interstitial moved during the relaxation) and
        ``relaxed_site_distance_A`` (how far from that site's start, Å: near zero where the
        relaxed structure is that site, larger where it is none of the standard ones)."""
        e0 = e0_per_atom(relaxed)
        start = {(m["element"], m["site"]): a for a, m in self.make(relaxed.atoms, folder)}
        host = supercell(conventional(relaxed.atoms)[1], self.conf["supercell"])
        rows = []
        for r, m in zip(results, metas):
            same = {site: a for (ele, site), a in start.items() if ele == m["element"] and len(a) == len(r.atoms)
                    and np.allclose(a.cell.array, r.atoms.cell.array, atol=1e-6)}
            site, dist = nearest_template(r.atoms, same, host) if same else (None, None)
            rows.append({**m, "natoms": len(r.atoms), "formation_energy_eV": r.energy - len(r.atoms) * e0,
                         "relaxed_site": site, "relaxed_site_distance_A": dist})
        return {"interstitials": rows}

    def report(self, res):
        rows = [(v["element"], v["site"], v.get("relaxed_site") or "-",
                 "-" if v.get("relaxed_site_distance_A") is None else fmt(v["relaxed_site_distance_A"], 2),
                 v["natoms"], fmt(v["formation_energy_eV"])) for v in res["interstitials"]]
        return "Interstitial formation energy\n" + table(rows, ("element", "site", "relaxed to", "off by (A)",
                                                                "natoms", "E_f (eV)"))

    @classmethod
    def scalars(cls, res):
        return {f"interstitial {v['element']} {v['site']} E_f (eV)": v["formation_energy_eV"]
                for v in res["interstitials"]}
