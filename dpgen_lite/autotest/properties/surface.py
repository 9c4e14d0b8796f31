"""Surface energies of the symmetrically distinct low-index planes (pymatgen ``SlabGenerator``)."""

from __future__ import annotations

import numpy as np

from ...params import ParamError
from ..units import EV_A2_TO_J_M2
from .base import Property, _a, check_vector, e0_per_atom, fmt, register, table


@register
class Surface(Property):
    """γ_s = (E_slab - N e0) / (2 A) in J/m², A = |a x b| of the slab cell, e0 the relaxed energy per atom.

    Keys (DP-GEN's): ``max_miller`` (default 2: every distinct plane up to that index, pymatgen
    ``get_symmetrically_distinct_miller_indices``) or ``miller`` (explicit list of [h, k, l]),
    ``min_slab_size`` (Å, default 10), ``min_vacuum_size`` (Å, default 11).  One slab per plane:
    ``SlabGenerator(..., center_slab=True, max_normal_search=max index).get_slabs()[0]`` (the first
    distinct termination), atoms relaxed at fixed cell by default (``relax_pos`` false: unrelaxed surface).
    """

    name = "surface"

    @classmethod
    def args(cls):
        return [_a("max_miller", int, "largest Miller index", default=2),
                _a("miller", list, "explicit Miller indices [[h, k, l], ...]", default=None),
                _a("min_slab_size", float, "slab thickness, Å", default=10.0),
                _a("min_vacuum_size", float, "vacuum thickness, Å", default=11.0)]

    def check(self, structure):
        for i, hkl in enumerate(self.conf["miller"] or []):
            check_vector({"type": "surface", f"miller[{i}]": hkl}, f"miller[{i}]", 3)
            if not any(hkl):
                raise ParamError(f"properties[surface].miller[{i}] = {hkl}: not a plane")
        if self.conf["max_miller"] < 1:
            raise ParamError(f"properties[surface].max_miller = {self.conf['max_miller']}: need >= 1")

    def millers(self, structure) -> list[tuple[int, int, int]]:
        """The planes computed (``miller``, else the distinct ones up to ``max_miller``)."""
        from pymatgen.core.surface import get_symmetrically_distinct_miller_indices
        if self.conf["miller"]:
            return [tuple(m) for m in self.conf["miller"]]
        return sorted(get_symmetrically_distinct_miller_indices(structure, self.conf["max_miller"]))

    def make(self, relaxed, folder):
        from pymatgen.core.surface import SlabGenerator
        from pymatgen.io.ase import AseAtomsAdaptor
        structure = AseAtomsAdaptor.get_structure(relaxed)
        tasks = []
        for hkl in self.millers(structure):
            gen = SlabGenerator(structure, hkl, self.conf["min_slab_size"], self.conf["min_vacuum_size"],
                                center_slab=True, max_normal_search=max(abs(x) for x in hkl))
            slab = AseAtomsAdaptor.get_atoms(gen.get_slabs()[0].get_sorted_structure())
            slab.pbc = True
            tasks.append((slab, {"miller": [int(x) for x in hkl]}))
        return tasks

    def post(self, results, metas, relaxed, folder):
        e0 = e0_per_atom(relaxed)
        rows = []
        for r, m in zip(results, metas):
            area = float(np.linalg.norm(np.cross(r.atoms.cell[0], r.atoms.cell[1])))
            rows.append({"miller": m["miller"], "natoms": len(r.atoms), "area_A2": area,
                         "surface_energy_J_m2": (r.energy - len(r.atoms) * e0) / (2 * area) * EV_A2_TO_J_M2})
        return {"surfaces": rows}

    def report(self, res):
        rows = [("".join(map(str, s["miller"])), s["natoms"], fmt(s["area_A2"], 3), fmt(s["surface_energy_J_m2"]))
                for s in res["surfaces"]]
        return "Surface energy\n" + table(rows, ("hkl", "natoms", "A (A^2)", "gamma_s (J/m^2)"))

    @classmethod
    def scalars(cls, res):
        return {f"surface ({''.join(map(str, s['miller']))}) (J/m²)": s["surface_energy_J_m2"]
                for s in res["surfaces"]}
