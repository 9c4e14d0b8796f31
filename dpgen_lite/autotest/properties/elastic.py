"""Elastic constants: stress-strain fits of independently strained cells (pymatgen ``ElasticTensor``)."""

from __future__ import annotations

import numpy as np

from ...params import ParamError
from .base import Property, _a, fmt, register, table

VOIGT = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]


def moduli(k: float, g: float) -> tuple[float, float]:
    """Young's modulus E (units of k, g) and Poisson's ratio ν of an isotropic solid with bulk
    modulus ``k`` and shear modulus ``g``: E = 9kg/(3k+g), ν = (3k-2g)/(2(3k+g))
    (e.g. Landau & Lifshitz, Theory of Elasticity, §5)."""
    return 9 * k * g / (3 * k + g), (3 * k - 2 * g) / (2 * (3 * k + g))


@register
class Elastic(Property):
    """6x6 C_ij (GPa, Voigt order xx yy zz yz xz xy) from ``ElasticTensor.from_independent_strains``.

    Keys (DP-GEN's): ``norm_deform`` and ``shear_deform`` (largest strain, default 0.01),
    ``n_deform`` (strains per component: 2 gives ±d, 4 gives ±d, ±d/2; default 4).  Each task is the
    relaxed cell under one Green-Lagrange strain ``pymatgen Strain.from_index_amount`` (deformation
    ``F`` with ``cell' = cell Fᵀ``), atoms relaxed at fixed cell; one more task gives the reference
    stress of the unstrained cell.  Averages: Voigt, Reuss and Hill (Hill, Proc. Phys. Soc. A 65,
    349 (1952)) bulk B and shear G from pymatgen, E and ν from :func:`moduli`.
    """

    name = "elastic"

    @classmethod
    def args(cls):
        return [_a("norm_deform", float, "largest normal strain", default=0.01),
                _a("shear_deform", float, "largest shear strain", default=0.01),
                _a("n_deform", int, "strains per component: 2 or 4", default=4)]

    def check(self, structure):
        c = self.conf
        if c["n_deform"] not in (2, 4) or not (0 < c["norm_deform"] < 0.1 and 0 < c["shear_deform"] < 0.1):
            raise ParamError(f"properties[elastic]: n_deform = {c['n_deform']} (2 or 4), norm_deform = "
                             f"{c['norm_deform']}, shear_deform = {c['shear_deform']} (each in (0, 0.1))")

    def strains(self) -> list:
        """pymatgen ``Strain`` objects, one per task (normal components first)."""
        from pymatgen.analysis.elasticity import Strain
        c = self.conf
        out = []
        for k, ind in enumerate(VOIGT):
            d = c["norm_deform"] if k < 3 else c["shear_deform"]
            amounts = [-d, d] if c["n_deform"] == 2 else [-d, -d / 2, d / 2, d]
            out += [Strain.from_index_amount(ind, a) for a in amounts]
        return out

    def make(self, relaxed, folder):
        tasks = [(relaxed.copy(), {"strain": np.zeros((3, 3)).tolist()})]
        for strain in self.strains():
            atoms = relaxed.copy()
            atoms.set_cell(atoms.cell.array @ np.asarray(strain.get_deformation_matrix()).T, scale_atoms=True)
            tasks.append((atoms, {"strain": np.asarray(strain).tolist()}))
        return tasks

    def post(self, results, metas, relaxed, folder):
        from pymatgen.analysis.elasticity import ElasticTensor, Strain, Stress
        eq = Stress(results[0].stress)
        strains = [Strain(m["strain"]) for m in metas[1:]]
        stresses = [Stress(r.stress) for r in results[1:]]
        et = ElasticTensor.from_independent_strains(strains, stresses, eq_stress=eq, vasp=False, tol=1e-8)
        out = {"C_GPa": np.round(np.asarray(et.voigt), 6).tolist()}
        for avg, k, g in (("voigt", et.k_voigt, et.g_voigt), ("reuss", et.k_reuss, et.g_reuss),
                          ("hill", et.k_vrh, et.g_vrh)):
            e, nu = moduli(k, g)
            out.update({f"B_{avg}_GPa": float(k), f"G_{avg}_GPa": float(g), f"E_{avg}_GPa": float(e),
                        f"nu_{avg}": float(nu)})
        return out

    def report(self, res):
        c = np.array(res["C_GPa"])
        text = "Elastic constants C_ij (GPa), Voigt order xx yy zz yz xz xy\n"
        text += "\n".join(" ".join(f"{x:10.2f}" for x in row) for row in c) + "\n"
        rows = [(avg, fmt(res[f"B_{avg}_GPa"], 2), fmt(res[f"G_{avg}_GPa"], 2), fmt(res[f"E_{avg}_GPa"], 2),
                 fmt(res[f"nu_{avg}"], 3)) for avg in ("voigt", "reuss", "hill")]
        return text + table(rows, ("average", "B (GPa)", "G (GPa)", "E (GPa)", "nu"))

    @classmethod
    def scalars(cls, res):
        c = res["C_GPa"]
        out = {f"C{i + 1}{j + 1} (GPa)": c[i][j] for i, j in ((0, 0), (0, 1), (0, 2), (2, 2), (3, 3), (5, 5))}
        out.update({"B_VRH (GPa)": res["B_hill_GPa"], "G_VRH (GPa)": res["G_hill_GPa"],
                    "E_VRH (GPa)": res["E_hill_GPa"], "ν_VRH": res["nu_hill"]})
        return out
