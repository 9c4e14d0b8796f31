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


def period(conv, direction) -> float:
    """Length (Å) of the shortest translation along [u v w] (basis of the cell ``conv``) that maps the
    crystal onto itself: |[u v w]| / n for the largest n that does (fcc: a/2<110>, a/2<112>)."""
    frac, symbols = conv.get_scaled_positions(), np.array(conv.get_chemical_symbols())
    u = np.array(direction, float)
    for n in range(12, 1, -1):
        d = (frac[:, None, :] + u / n - frac[None, :, :] + 0.5) % 1 - 0.5
        same = (np.linalg.norm(d, axis=2) < 1e-4) & (symbols[:, None] == symbols[None, :])
        if same.any(axis=1).all():
            return float(np.linalg.norm(u @ conv.cell.array) / n)
    return float(np.linalg.norm(u @ conv.cell.array))


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


#: DP-GEN's slip systems (miller_index, displace_direction) -> the slip direction it uses (the first
#: cell vector of its ``return_direction`` table: the family member of displace_direction in the plane)
DPGEN_SLIP = {
    ((1, 0, 0), (0, 1, 0)): (0, 1, 0),
    ((1, 1, 0), (1, 1, 1)): (-1, 1, 1),
    ((1, 1, 1), (1, 1, 0)): (-1, 1, 0),
    ((1, 1, 1), (1, 1, 2)): (1, 1, -2),
    ((1, 1, 2), (1, 1, 1)): (-1, -1, 1),
    ((1, 2, 3), (1, 1, 1)): (-1, -1, 1),
}


@register
class Gamma(Property):
    """γ(d) = (E(d) - E(0)) / A in J/m², A = |a x b|, the slip cell (:func:`slip_cell`) repeated
    ``supercell_size`` times; atoms relax along the plane normal only (``add_fix``), the cell is fixed.
    With ``min_vacuum_size`` 0 the cell's c vector is tilted by d along the slip direction (one fault
    per cell, no surface); with a vacuum (DP-GEN's slab) the upper half of the slab slides by d.

    Keys: ``plane_miller`` [h, k, l] and ``slip_direction`` [u, v, w] (conventional standard cell,
    pymatgen; APEX's names), or DP-GEN's ``miller_index`` and ``displace_direction`` (a direction
    family: DP-GEN's slip systems 100/010, 110/111, 111/110, 111/112, 112/111 and 123/111 slip along
    the member it picks, :data:`DPGEN_SLIP`; any other pair must have the direction in the plane);
    ``lattice_type`` (DP-GEN's "fcc" / "bcc", "hcp": checked against the structure),
    ``supercell_size`` (repetitions of the slip cell; default [1, 1, 2], DP-GEN's [1, 1, 5] with
    its keys), ``min_vacuum_size`` (Å; default 0, DP-GEN's 20 with its keys), ``add_fix``
    (frozen Cartesian axes, DP-GEN's ["true", "true", "false"]), ``slip_length`` (Å; default
    |slip_direction|, or with DP-GEN's keys its one lattice period along the direction,
    :func:`period`: b = a/2<110> in fcc), ``n_steps`` (points after d = 0, default 10).
    The unstable and stable stacking-fault energies are read off the line (:func:`stacking_faults`).
    """

    name = "gamma"
    default_setting = {"relax_pos": True, "relax_shape": False, "relax_vol": False}

    @classmethod
    def args(cls):
        return [_a("plane_miller", list, "Miller indices of the slip plane", default=None),
                _a("slip_direction", list, "slip direction, lattice-vector indices", default=None),
                _a("miller_index", list, "DP-GEN's name of the slip plane", default=None),
                _a("displace_direction", list, "DP-GEN's slip direction (family)", default=None),
                _a("lattice_type", str, "fcc, bcc or hcp: checked against the structure", default=None),
                _a("supercell_size", list, "repetitions of the slip cell", default=None),
                _a("min_vacuum_size", [int, float], "vacuum along the normal, Å (0: tilted cell)", default=None),
                _a("add_fix", list, "per Cartesian axis, whether atoms stay fixed", default=["true", "true", "false"]),
                _a("slip_length", float, "length of the γ-line, Å (default |slip_direction|)", default=None),
                _a("n_steps", int, "displacements after 0", default=10)]

    @property
    def dpgen_keys(self) -> bool:
        """Whether the slip system is given with DP-GEN's keys (its defaults then apply)."""
        return self.conf.get("miller_index") is not None

    def slip_system(self) -> tuple[list, list]:
        """(plane, direction) in the conventional standard cell.

        Raises
        ------
        ParamError
            for a missing or doubly given plane / direction, or a DP-GEN pair out of its table
            whose direction is not in the plane.
        """
        c = self.conf
        pairs = (("plane_miller", "miller_index"), ("slip_direction", "displace_direction"))
        for new, old in pairs:
            if (c.get(new) is None) == (c.get(old) is None):
                raise ParamError(f"properties[gamma]: {new} = {c.get(new)!r}, {old} = {c.get(old)!r}: give "
                                 f"exactly one of them")
        if (c.get("plane_miller") is None) != (c.get("slip_direction") is None):
            raise ParamError("properties[gamma]: give plane_miller with slip_direction, or DP-GEN's miller_index "
                             "with displace_direction")
        if not self.dpgen_keys:
            return c["plane_miller"], c["slip_direction"]
        plane, family = c["miller_index"], c["displace_direction"]
        check_vector(c, "miller_index", 3)
        check_vector(c, "displace_direction", 3)
        picked = DPGEN_SLIP.get((tuple(plane), tuple(family)))
        if picked is None and np.dot(plane, family) != 0:
            known = ", ".join(f"{''.join(map(str, p))}/{''.join(map(str, d))}" for p, d in DPGEN_SLIP)
            raise ParamError(f"properties[gamma]: miller_index = {plane}, displace_direction = {family}: not one of "
                             f"DP-GEN's slip systems ({known}) and the direction is not in the plane; give a "
                             "direction in the plane")
        return plane, list(picked or family)

    def size(self) -> list[int]:
        """``supercell_size``, or the default of the key family used."""
        return self.conf["supercell_size"] or ([1, 1, 5] if self.dpgen_keys else [1, 1, 2])

    def vacuum(self) -> float:
        """``min_vacuum_size`` (Å), or the default of the key family used."""
        v = self.conf["min_vacuum_size"]
        return float(v if v is not None else (20 if self.dpgen_keys else 0))

    def check(self, structure):
        plane, direction = self.slip_system()
        check_vector(self.conf, "plane_miller", 3)
        check_vector(self.conf, "slip_direction", 3, float)
        check_vector(self.conf, "supercell_size", 3)
        fix = self.conf["add_fix"]
        if len(fix) != 3 or any(str(x).lower() not in ("true", "false") for x in fix):
            raise ParamError(f"properties[gamma].add_fix = {fix!r}: need three of true / false (DP-GEN: "
                             "\"true\" / \"false\"), one per Cartesian axis")
        if self.conf["n_steps"] < 1 or self.vacuum() < 0:
            raise ParamError(f"properties[gamma]: n_steps = {self.conf['n_steps']} (need >= 1), min_vacuum_size = "
                             f"{self.conf['min_vacuum_size']} (need >= 0)")
        from .interstitial import conventional
        lattice, conv = conventional(structure)
        want = self.conf["lattice_type"]
        if want is not None and want != lattice:
            raise ParamError(f"properties[gamma].lattice_type = {want!r}, but the structure is "
                             f"{lattice or 'not fcc, bcc or hcp'}; give the structure's lattice")
        slip_cell(conv, plane, direction)

    def task_setting(self, meta):
        return {**self.setting(), "fix_axes": [str(x).lower() == "true" for x in self.conf["add_fix"]]}

    def make(self, relaxed, folder):
        from .interstitial import conventional
        size = self.size()
        conv = conventional(relaxed)[1]
        plane, direction = self.slip_system()
        base = slip_cell(conv, plane, direction).repeat(tuple(size))
        length = self.conf["slip_length"] or (period(conv, direction) if self.dpgen_keys
                                              else float(np.linalg.norm(base.cell[0]) / size[0]))
        vacuum = self.vacuum()
        if vacuum > 0:
            base.center(vacuum=vacuum / 2, axis=2)
        upper = base.get_scaled_positions()[:, 2] > 0.5
        tasks = []
        for k in range(self.conf["n_steps"] + 1):
            d = length * k / self.conf["n_steps"]
            atoms = base.copy()
            if vacuum > 0:  # a ∥ x
                atoms.positions[upper, 0] += d
            else:
                cell = atoms.cell.array.copy()
                cell[2, 0] += d
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
