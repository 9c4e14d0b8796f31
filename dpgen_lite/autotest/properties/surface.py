"""Surface energies of the symmetrically distinct low-index planes, every termination of each
(pymatgen ``SlabGenerator``), the lowest reported per plane."""

from __future__ import annotations

import numpy as np

from ...params import ParamError
from ..units import EV_A2_TO_J_M2
from .base import Property, _a, e0_per_atom, fmt, four_index, is_hexagonal, miller_bravais, register, table, three_index


def bulk_structure(atoms):
    """The pymatgen structure whose cell the Miller indices refer to: for a hexagonal lattice the
    conventional standard cell (a₁, a₂ at 120°, c along z), else the cell as given."""
    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
    structure = AseAtomsAdaptor.get_structure(atoms)
    if is_hexagonal(structure):
        return SpacegroupAnalyzer(structure).get_conventional_standard_structure()
    return structure


def terminations(structure, hkl: tuple[int, int, int], min_slab_size: float, min_vacuum_size: float) -> list:
    """pymatgen's slabs (``Slab``, Å) of plane ``hkl`` of ``structure``, one per distinct
    termination, each reduced to its primitive cell, the same slabs as
    ``SlabGenerator(...).get_slabs()`` with its defaults, but not centred (ASE centres them).

    pymatgen reduces every candidate termination and the oriented unit cell with it, also the
    candidates its matching then drops; here the candidates are matched unreduced and only the
    distinct ones reduced (fcc up to (221): 2.1 -> 0.4 s), with the lattice and orientation of
    pymatgen's ``get_slab`` (reduction ``get_primitive_structure(tolerance=0.1)``, then ``Slab``'s
    reorientation).  pymatgen's ``center_slab`` searches every site's neighbours (70 % of the
    step before), so ``center_slab=False``: the slab starts at the cell's bottom, unbroken.

    ``hkl``: three Miller indices of ``structure``'s cell (:func:`bulk_structure`), not all zero;
    ``min_slab_size``, ``min_vacuum_size`` in Å.  Raises nothing of its own: the plane is
    checked when the property is loaded (:meth:`Surface.check`), and pymatgen's errors pass through.
    """
    from pymatgen.core.surface import Slab, SlabGenerator
    gen = SlabGenerator(structure, hkl, min_slab_size, min_vacuum_size, center_slab=False,
                        max_normal_search=max(abs(x) for x in hkl), primitive=False)
    slabs = []
    for cut in gen.get_slabs():
        prim = cut.get_primitive_structure(tolerance=0.1, reduce=False)
        scale = np.linalg.solve(gen.parent.lattice.matrix.T, prim.lattice.matrix.T).T
        slabs.append(Slab(prim.lattice, prim.species_and_occu, prim.frac_coords, cut.miller_index,
                          cut.oriented_unit_cell, cut.shift, scale, reorient_lattice=True))
    return slabs


@register
class Surface(Property):
    """γ_s = (E_slab - N e0) / (2 A) in J/m², A = |a x b| of the slab cell, e0 the relaxed energy
    per atom (both faces of the slab are the same termination).

    Keys (DP-GEN's): ``max_miller`` (default 2: every distinct plane up to that index, pymatgen
    ``get_symmetrically_distinct_miller_indices``) or ``miller`` (explicit list of [h, k, l]; for a
    hexagonal lattice four Miller-Bravais indices [h, k, i, l] with i = -(h + k), in the
    conventional hexagonal cell: basal [0, 0, 0, 1], prism [1, 0, -1, 0], pyramidal I
    [1, 0, -1, 1], pyramidal II [1, 1, -2, 2]), ``min_slab_size`` (Å, default 10),
    ``min_vacuum_size`` (Å, default 11), ``pert_xz`` (Å, default 0.01: DP-GEN's shear of the slab
    cell, its third vector's x component increased with the atoms carried along; a VASP
    work-around, kept so that the tasks are DP-GEN's).  Every distinct termination of a plane
    (``SlabGenerator(..., center_slab=True, max_normal_search=max index).get_slabs()``) is a task;
    the plane's surface energy is the lowest (an hcp prism plane has a narrow and a wide cut, the
    narrow one about a quarter higher).  Atoms relaxed at fixed cell by default (``relax_pos``
    false: unrelaxed surface).
    """

    name = "surface"

    @classmethod
    def args(cls):
        return [_a("max_miller", int, "largest Miller index", default=2),
                _a("miller", list, "explicit Miller indices [[h, k, l], ...] ([[h, k, i, l], ...] for hexagonal "
                   "lattices)", default=None),
                _a("min_slab_size", float, "slab thickness, Å", default=10.0),
                _a("min_vacuum_size", float, "vacuum thickness, Å", default=11.0),
                _a("pert_xz", float, "added to the x component of the slab's c vector, Å", default=0.01)]

    def check(self, structure):
        """Miller indices: 4 with i = -(h + k) for a hexagonal lattice, else 3; not all zero.

        Raises
        ------
        ParamError
            naming the index, its value and the notation needed.
        """
        from pymatgen.io.ase import AseAtomsAdaptor
        hexagonal = bool(self.conf["miller"]) and is_hexagonal(AseAtomsAdaptor.get_structure(structure))
        for i, hkl in enumerate(self.conf["miller"] or []):
            key = f"properties[surface].miller[{i}] = {hkl!r}"
            if hexagonal:
                miller_bravais(key, hkl, example="[1, 0, -1, 0] for the prism plane")
            elif not (isinstance(hkl, list) and len(hkl) == 3
                      and all(isinstance(x, int) and not isinstance(x, bool) for x in hkl)):
                raise ParamError(f"{key}: need a list of 3 integers (three-index Miller notation; four indices "
                                 "are for hexagonal lattices)")
            if not any(hkl):
                raise ParamError(f"{key}: not a plane")
        if self.conf["max_miller"] < 1:
            raise ParamError(f"properties[surface].max_miller = {self.conf['max_miller']}: need >= 1")

    def millers(self, structure) -> list[tuple[int, int, int]]:
        """The planes computed, as (h, k, l) of ``structure``'s cell (:func:`bulk_structure`):
        ``miller``, else the distinct ones up to ``max_miller``."""
        from pymatgen.core.surface import get_symmetrically_distinct_miller_indices
        if self.conf["miller"]:
            return [three_index(m) if len(m) == 4 else tuple(m) for m in self.conf["miller"]]
        return sorted(get_symmetrically_distinct_miller_indices(structure, self.conf["max_miller"]))

    def make(self, relaxed, folder):
        """One task per (plane, termination); meta: the plane as given (four indices for hexagonal
        lattices), the termination's number and pymatgen's shift (fractional, along the normal)."""
        from pymatgen.io.ase import AseAtomsAdaptor
        structure = bulk_structure(relaxed)
        hexagonal = is_hexagonal(structure)
        tasks = []
        for hkl in self.millers(structure):
            for j, cut in enumerate(terminations(structure, hkl, self.conf["min_slab_size"], self.conf["min_vacuum_size"])):
                slab = AseAtomsAdaptor.get_atoms(cut.get_sorted_structure())
                slab.pbc = True
                slab.center(axis=2)
                cell = slab.cell.array.copy()
                cell[2, 0] += self.conf["pert_xz"]
                slab.set_cell(cell, scale_atoms=True)
                miller = four_index(hkl) if hexagonal else list(hkl)
                tasks.append((slab, {"miller": [int(x) for x in miller], "termination": j, "shift": float(cut.shift)}))
        return tasks

    def post(self, results, metas, relaxed, folder):
        """``surfaces``: per plane, the lowest termination's ``natoms``, ``area_A2`` (Å²),
        ``surface_energy_J_m2`` and ``termination``, with every termination under ``terminations``."""
        e0 = e0_per_atom(relaxed)
        planes: dict[tuple, list[dict]] = {}
        for r, m in zip(results, metas):
            area = float(np.linalg.norm(np.cross(r.atoms.cell[0], r.atoms.cell[1])))
            planes.setdefault(tuple(m["miller"]), []).append(
                {"termination": m.get("termination", 0), "shift": m.get("shift"), "natoms": len(r.atoms),
                 "area_A2": area, "surface_energy_J_m2": (r.energy - len(r.atoms) * e0) / (2 * area) * EV_A2_TO_J_M2})
        rows = []
        for miller, cuts in planes.items():
            low = min(cuts, key=lambda c: c["surface_energy_J_m2"])
            rows.append({"miller": list(miller), **{k: low[k] for k in ("termination", "natoms", "area_A2",
                                                                         "surface_energy_J_m2")},
                         "terminations": cuts})
        return {"surfaces": rows}

    def report(self, res):
        rows = [(name(s["miller"]), f"{c.get('termination', 0)}{' *' if c is s or c['termination'] == s['termination'] else ''}",
                 c["natoms"], fmt(c["area_A2"], 3), fmt(c["surface_energy_J_m2"]))
                for s in res["surfaces"] for c in s.get("terminations", [s])]
        return ("Surface energy (* the lowest termination, the plane's value)\n"
                + table(rows, ("hkl", "termination", "natoms", "A (A^2)", "gamma_s (J/m^2)")))

    @classmethod
    def scalars(cls, res):
        return {f"surface ({name(s['miller'])}) (J/m²)": s["surface_energy_J_m2"] for s in res["surfaces"]}


def name(miller: list[int]) -> str:
    """``111``, or ``1-10`` with signs where an index is negative (``10-10`` for four indices)."""
    return "".join(map(str, miller))
