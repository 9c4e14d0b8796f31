"""Equation of state: energy per atom over a volume range, Birch-Murnaghan fit (ASE ``EquationOfState``)."""

from __future__ import annotations

import numpy as np

from ...params import ParamError
from ..units import EV_A3_TO_GPA
from .base import Property, _a, e0_per_atom, fmt, register, table


@register
class Eos(Property):
    """E(V): the relaxed cell scaled isotropically to each volume, positions relaxed at fixed cell.

    Keys (DP-GEN's): ``vol_start``, ``vol_end``, ``vol_step`` (volume per atom, Å^3, when ``vol_abs``;
    otherwise ratios to the relaxed volume), ``vol_abs`` (default false).
    Result: volumes (Å^3/atom), energies (eV/atom) and the third-order Birch-Murnaghan fit
    (Birch, Phys. Rev. 71, 809 (1947)) by ASE's ``EquationOfState(eos="birchmurnaghan")``
    (least squares from a parabola's start; pymatgen's ``EOS("birch_murnaghan")`` agrees to
    1e-10): E0 (eV/atom), V0 (Å^3/atom), B0 (GPa), B0' (dimensionless).
    """

    name = "eos"

    @classmethod
    def args(cls):
        return [_a("vol_start", float, "first volume (ratio, or Å^3/atom with vol_abs)", default=0.9),
                _a("vol_end", float, "last volume, included when on the grid", default=1.1),
                _a("vol_step", float, "volume step", default=0.025),
                _a("vol_abs", bool, "volumes in Å^3/atom instead of ratios", default=False)]

    def volumes(self, v0: float) -> np.ndarray:
        """Volumes per atom (Å^3) of the tasks for the relaxed volume ``v0`` (Å^3/atom)."""
        c = self.conf
        grid = np.arange(c["vol_start"], c["vol_end"] + 1e-9 * abs(c["vol_step"]), c["vol_step"])
        return grid if c["vol_abs"] else grid * v0

    def check(self, structure):
        c = self.conf
        n = len(np.arange(c["vol_start"], c["vol_end"] + 1e-9, c["vol_step"])) if c["vol_step"] > 0 else 0
        if c["vol_start"] <= 0 or n < 5:
            raise ParamError(f"properties[eos]: vol_start = {c['vol_start']}, vol_end = {c['vol_end']}, "
                             f"vol_step = {c['vol_step']} give {n} volume(s); need vol_start > 0 and at least "
                             "5 volumes for a Birch-Murnaghan fit")

    def make(self, relaxed, folder):
        v0 = relaxed.get_volume() / len(relaxed)
        tasks = []
        for v in self.volumes(v0):
            atoms = relaxed.copy()
            atoms.set_cell(atoms.cell.array * (v / v0) ** (1 / 3), scale_atoms=True)
            tasks.append((atoms, {"volume_per_atom_A3": float(v)}))
        return tasks

    def post(self, results, metas, relaxed, folder):
        from ase.eos import EquationOfState  # pymatgen's EOS gives the same fit, but imports matplotlib (0.7 s)
        vols = np.array([r.atoms.get_volume() / len(r.atoms) for r in results])
        ens = np.array([e0_per_atom(r) for r in results])
        fit = EquationOfState(vols, ens, eos="birchmurnaghan")
        fit.fit(warn=False)
        e0, b0, b1, v0 = fit.eos_parameters
        return {"volume_per_atom_A3": vols.tolist(), "energy_per_atom_eV": ens.tolist(),
                "E0_eV_per_atom": float(e0), "V0_A3_per_atom": float(v0),
                "B0_GPa": float(b0 * EV_A3_TO_GPA), "B0_prime": float(b1), "fit": "birch_murnaghan (ASE)"}

    def report(self, res):
        rows = [(fmt(v), fmt(e, 6)) for v, e in zip(res["volume_per_atom_A3"], res["energy_per_atom_eV"])]
        return ("Equation of state\n" + table(rows, ("V (A^3/atom)", "E (eV/atom)"))
                + f"Birch-Murnaghan: E0 = {res['E0_eV_per_atom']:.6f} eV/atom, V0 = {res['V0_A3_per_atom']:.4f} "
                f"A^3/atom, B0 = {res['B0_GPa']:.2f} GPa, B0' = {res['B0_prime']:.3f}\n")

    @classmethod
    def scalars(cls, res):
        return {"EOS V0 (Å³/atom)": res["V0_A3_per_atom"], "EOS B0 (GPa)": res["B0_GPa"],
                "EOS B0'": res["B0_prime"]}

    @classmethod
    def plot(cls, ax, res, label):
        e = np.array(res["energy_per_atom_eV"])
        ax.plot(res["volume_per_atom_A3"], e - e.min(), "o-", label=label)
        ax.set_xlabel("V (Å³/atom)")
        ax.set_ylabel("E - E_min (eV/atom)")
        return True
