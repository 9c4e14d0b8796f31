"""Relaxation: positions, shape and volume towards zero stress (``relaxation/relax_task``)."""

from __future__ import annotations

from .base import Property, e0_per_atom, fmt, register, table


@register
class Relaxation(Property):
    """The equilibrium structure every other property starts from (DP-GEN's ``relaxation``): energy
    per atom (eV), volume per atom (Å³), cell lengths (Å) and angles (degrees), c/a (the hcp
    axial ratio), the residual stress (GPa)."""

    name = "relaxation"
    default_setting = {"relax_pos": True, "relax_shape": True, "relax_vol": True}

    @property
    def folder(self) -> str:
        return "relaxation"

    def make(self, relaxed, folder):
        return [(relaxed.copy(), {})]

    def post(self, results, metas, relaxed, folder):
        r = results[0]
        n = len(r.atoms)
        a, b, c, alpha, beta, gamma = r.atoms.cell.cellpar()
        return {
            "energy_per_atom_eV": e0_per_atom(r), "volume_per_atom_A3": r.atoms.get_volume() / n,
            "a_A": a, "b_A": b, "c_A": c, "c_over_a": c / a, "alpha_deg": alpha, "beta_deg": beta, "gamma_deg": gamma,
            "cell_A": r.atoms.cell.array.tolist(), "stress_GPa": r.stress.tolist(), "natoms": n,
        }

    def report(self, res):
        rows = [(k, fmt(res[k], 6)) for k in ("energy_per_atom_eV", "volume_per_atom_A3", "a_A", "b_A", "c_A",
                                              "c_over_a", "alpha_deg", "beta_deg", "gamma_deg")]
        return "Relaxed structure\n" + table(rows, ("quantity", "value"))

    @classmethod
    def scalars(cls, res):
        return {"E (eV/atom)": res["energy_per_atom_eV"], "V (Å³/atom)": res["volume_per_atom_A3"],
                "a (Å)": res["a_A"], "c (Å)": res["c_A"], "c/a": res["c_A"] / res["a_A"]}
