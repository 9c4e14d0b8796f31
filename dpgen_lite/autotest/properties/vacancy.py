"""Vacancy formation energy: one atom removed from a supercell of the relaxed cell."""

from __future__ import annotations

from .base import Property, _a, check_vector, e0_per_atom, fmt, register, supercell, table


def distinct_sites(atoms) -> list[int]:
    """Index of one atom per symmetry-equivalence class (pymatgen ``SpacegroupAnalyzer``)."""
    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
    sym = SpacegroupAnalyzer(AseAtomsAdaptor.get_structure(atoms), symprec=0.01).get_symmetrized_structure()
    return sorted(group[0] for group in sym.equivalent_indices)


@register
class Vacancy(Property):
    """E_f = E(N-1) - (N-1) e0, e0 the relaxed energy per atom (eV); one task per symmetry-distinct site.

    Keys (DP-GEN's): ``supercell`` (3 ints, repetitions of the relaxed cell, default [3, 3, 3]).
    Atoms relax at fixed cell by default (constant-volume formation energy); ``cal_setting`` with
    relax_vol/relax_shape relaxes the cell too.
    """

    name = "vacancy"

    @classmethod
    def args(cls):
        return [_a("supercell", list, "repetitions of the relaxed cell", default=[3, 3, 3])]

    def check(self, structure):
        check_vector(self.conf, "supercell", 3)

    def make(self, relaxed, folder):
        tasks = []
        for site in distinct_sites(relaxed):
            atoms = supercell(relaxed, self.conf["supercell"])
            symbol = atoms[site].symbol
            del atoms[site]
            tasks.append((atoms, {"site": int(site), "element": symbol}))
        return tasks

    def post(self, results, metas, relaxed, folder):
        e0 = e0_per_atom(relaxed)
        rows = [{"site": m["site"], "element": m["element"], "natoms": len(r.atoms),
                 "formation_energy_eV": r.energy - len(r.atoms) * e0} for r, m in zip(results, metas)]
        return {"vacancies": rows, "formation_energy_eV": min(x["formation_energy_eV"] for x in rows)}

    def report(self, res):
        rows = [(v["site"], v["element"], v["natoms"], fmt(v["formation_energy_eV"])) for v in res["vacancies"]]
        return "Vacancy formation energy\n" + table(rows, ("site", "element", "natoms", "E_f (eV)"))

    @classmethod
    def scalars(cls, res):
        return {"vacancy E_f (eV)": res["formation_energy_eV"]}
