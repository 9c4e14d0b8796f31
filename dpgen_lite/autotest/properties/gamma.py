"""Generalized stacking-fault energy along a slip direction (γ-line)."""

from __future__ import annotations

import itertools

import numpy as np

from ...params import ParamError
from ..units import EV_A2_TO_J_M2
from .base import Property, _a, check_vector, fmt, register, table


def _lattice_vectors(limit: int):
    rng = range(-limit, limit + 1)
    return [np.array(v) for v in itertools.product(rng, rng, rng) if any(v)]


def slip_cell(conv, plane, direction):
    """The conventional cell ``conv`` cut into a cell with a ∥ ``direction``, b in the plane, c ∥ its normal.

    ``plane``: Miller indices (h k l) and ``direction``: [u v w], both in the basis of ``conv``
    (h·u must be 0).  b is the shortest lattice vector in the plane not parallel to a, c the shortest
    lattice vector along the plane normal (both searched among small integer vectors); the cell is
    cut with ASE ``ase.build.cut`` and rotated so that a ∥ x, b in the xy plane, c ∥ z.

    Raises
    ------
    ParamError
        if the direction is not in the plane, or no lattice vector is normal to the plane.
    """
    from ase.build import cut
    from ase.geometry import cell_to_cellpar, cellpar_to_cell
    h, u = np.array(plane, float), np.array(direction, float)
    if abs(h @ u) > 1e-8:
        raise ParamError(f"properties[gamma]: slip_direction {list(direction)} is not in the plane "
                         f"{list(plane)} (h·u = {h @ u:g}, must be 0)")
    cell = conv.cell.array
    normal = h @ np.linalg.inv(cell).T  # reciprocal-lattice vector of the plane (Cartesian)
    a_cart = u @ cell
    in_plane = [v for v in _lattice_vectors(3) if abs(h @ v) < 1e-8
                and np.linalg.norm(np.cross(v @ cell, a_cart)) > 1e-6]
    along_n = [v for v in _lattice_vectors(6) if np.linalg.norm(np.cross(v @ cell, normal)) < 1e-6 * np.linalg.norm(v @ cell) * np.linalg.norm(normal) and (v @ cell) @ normal > 0]
    if not in_plane or not along_n:
        raise ParamError(f"properties[gamma]: no lattice vector of the conventional cell is normal to the "
                         f"plane {list(plane)}; the γ-line needs such a plane (e.g. fcc (111), bcc (110), hcp (001))")
    key = lambda v: (round(float(np.linalg.norm(v @ cell)), 6), tuple(-v))  # noqa: E731
    b = min(in_plane, key=key)
    c = min(along_n, key=key)
    if np.linalg.det(np.array([u, b, c])) < 0:
        b = -b
    atoms = cut(conv, a=u, b=b, c=c)
    atoms.set_cell(cellpar_to_cell(cell_to_cellpar(atoms.cell.array)), scale_atoms=True)
    return atoms


def vertex(x: np.ndarray, y: np.ndarray, i: int) -> tuple[float, float]:
    """(x, y) of the extremum of the parabola through points i-1, i, i+1 (points i at the ends)."""
    if i == 0 or i == len(y) - 1:
        return float(x[i]), float(y[i])
    (x0, x1, x2), (y0, y1, y2) = x[i - 1:i + 2], y[i - 1:i + 2]
    a, b, c = np.polyfit([x0, x1, x2], [y0, y1, y2], 2)
    if a == 0:
        return float(x1), float(y1)
    xv = float(np.clip(-b / (2 * a), x0, x2))
    return xv, float(np.polyval([a, b, c], xv))


def stacking_faults(fraction: list[float], gamma: list[float]) -> dict:
    """Stacking-fault energies read off a γ-line (J/m², fractions of the slip length).

    The stable fault is the first interior local minimum (γ[i-1] > γ[i] <= γ[i+1]); the unstable
    one is the maximum before it (the barrier a dislocation crosses to make the fault; with no
    stable fault, the maximum of the line).  Each is refined by the vertex of the parabola through
    the point and its two neighbours (three-point interpolation), so a line of n_steps 10 or more
    gives them to a few per cent.

    Returns
    -------
    ``{"unstable_J_m2", "unstable_at", "stable_J_m2", "stable_at"}``; the stable pair is None
    where the line has no interior minimum (bcc {110}<111>, for example).
    """
    x, y = np.asarray(fraction, float), np.asarray(gamma, float)
    minima = [i for i in range(1, len(y) - 1) if y[i - 1] > y[i] <= y[i + 1]]
    end = minima[0] if minima else len(y) - 1
    us_at, us = vertex(x, y, int(np.argmax(y[:end + 1])))
    sf_at, sf = vertex(x, y, minima[0]) if minima else (None, None)
    return {"unstable_J_m2": us, "unstable_at": us_at, "stable_J_m2": sf, "stable_at": sf_at}


@register
class Gamma(Property):
    """γ(d) = (E(d) - E(0)) / A in J/m², A = |a x b|: the cell's c vector tilted by d along the slip
    direction creates one fault per cell (no vacuum); atoms relax along the plane normal only
    (``fix_axes`` x, y frozen), the cell is fixed.

    Keys (DP-GEN's): ``plane_miller`` [h, k, l] and ``slip_direction`` [u, v, w] (conventional
    standard cell, pymatgen), ``supercell_size`` (repetitions of the slip cell, default [1, 1, 2]),
    ``slip_length`` (Å, default |[u v w]|), ``n_steps`` (points after d = 0, default 10).
    The unstable and stable stacking-fault energies are read off the line (:func:`stacking_faults`).
    """

    name = "gamma"
    default_setting = {"relax_pos": True, "relax_shape": False, "relax_vol": False}

    @classmethod
    def args(cls):
        return [_a("plane_miller", list, "Miller indices of the slip plane"),
                _a("slip_direction", list, "slip direction, lattice-vector indices"),
                _a("supercell_size", list, "repetitions of the slip cell", default=[1, 1, 2]),
                _a("slip_length", float, "length of the γ-line, Å (default |slip_direction|)", default=None),
                _a("n_steps", int, "displacements after 0", default=10)]

    def check(self, structure):
        check_vector(self.conf, "plane_miller", 3)
        check_vector(self.conf, "slip_direction", 3, float)
        check_vector(self.conf, "supercell_size", 3)
        if self.conf["n_steps"] < 1:
            raise ParamError(f"properties[gamma].n_steps = {self.conf['n_steps']}: need >= 1")
        from .interstitial import conventional
        slip_cell(conventional(structure)[1], self.conf["plane_miller"], self.conf["slip_direction"])

    def task_setting(self, meta):
        return {**self.setting(), "fix_axes": [True, True, False]}

    def make(self, relaxed, folder):
        from .interstitial import conventional
        base = slip_cell(conventional(relaxed)[1], self.conf["plane_miller"], self.conf["slip_direction"])
        base = base.repeat(tuple(self.conf["supercell_size"]))
        length = self.conf["slip_length"] or float(np.linalg.norm(base.cell[0]) / self.conf["supercell_size"][0])
        tasks = []
        for k in range(self.conf["n_steps"] + 1):
            d = length * k / self.conf["n_steps"]
            atoms = base.copy()
            cell = atoms.cell.array.copy()
            cell[2, 0] += d  # a ∥ x
            atoms.set_cell(cell, scale_atoms=False)
            tasks.append((atoms, {"displacement_A": d, "fraction": k / self.conf["n_steps"]}))
        return tasks

    def post(self, results, metas, relaxed, folder):
        area = float(np.linalg.norm(np.cross(results[0].atoms.cell[0], results[0].atoms.cell[1])))
        e = np.array([r.energy for r in results])
        gamma = (e - e[0]) / area * EV_A2_TO_J_M2
        fraction = [m["fraction"] for m in metas]
        return {"displacement_A": [m["displacement_A"] for m in metas], "fraction": fraction,
                "gamma_J_m2": gamma.tolist(), "area_A2": area, "gamma_max_J_m2": float(gamma.max()),
                "stacking_faults": stacking_faults(fraction, gamma.tolist())}

    def report(self, res):
        rows = [(fmt(f, 3), fmt(d, 4), fmt(g, 5)) for f, d, g in
                zip(res["fraction"], res["displacement_A"], res["gamma_J_m2"])]
        return ("Generalized stacking fault energy\n" + table(rows, ("fraction", "d (A)", "gamma (J/m^2)"))
                + f"max gamma = {res['gamma_max_J_m2']:.5f} J/m^2\n" + "".join(
                    f"{kind} stacking fault = {sf[f'{kind}_J_m2']:.5f} J/m^2 at {sf[f'{kind}_at']:.3f}\n"
                    for sf in [res.get("stacking_faults", {})] for kind in ("unstable", "stable")
                    if sf.get(f"{kind}_J_m2") is not None))

    @classmethod
    def scalars(cls, res):
        out = {"γ max (J/m²)": res["gamma_max_J_m2"]}
        sf = res.get("stacking_faults") or {}
        for kind, label in (("unstable", "γ_us"), ("stable", "γ_sf")):
            if sf.get(f"{kind}_J_m2") is not None:
                out[f"{label} (J/m²)"] = sf[f"{kind}_J_m2"]
        return out

    @classmethod
    def plot(cls, ax, res, label):
        ax.plot(res["fraction"], res["gamma_J_m2"], "o-", label=label)
        ax.set_xlabel("displacement / slip length")
        ax.set_ylabel("γ (J/m²)")
        return True
