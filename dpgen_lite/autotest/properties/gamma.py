"""Generalized stacking-fault energy along a slip direction (γ-line)."""

from __future__ import annotations

import itertools

import numpy as np

from ...params import ParamError
from ..units import EV_A2_TO_J_M2
from .base import (Property, _a, check_vector, direction_three_index, fmt, is_hexagonal, miller_bravais, register,
                   table, three_index)


def _lattice_vectors(limit: int):
    rng = range(-limit, limit + 1)
    return [np.array(v) for v in itertools.product(rng, rng, rng) if any(v)]


def layers(atoms, tol: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Heights (Å, along z, in [0, H), H = the cell's c_z) of the atomic layers of ``atoms`` (a cell with
    a and b in the xy plane) and the gap (Å) from each layer to the next one above it (the last one to
    the first layer of the next cell); atoms within ``tol`` Å of height are one layer.  Shapes (m,), (m,)."""
    height = atoms.cell[2, 2]
    z = np.sort(atoms.positions[:, 2] % height)
    z = z[np.r_[True, np.diff(z) > tol]]
    if len(z) > 1 and z[0] + height - z[-1] <= tol:
        z = z[:-1]
    return z, np.diff(np.r_[z, z[0] + height])


def slip_cell(conv, plane, direction, gap: str = "wide"):
    """The conventional cell ``conv`` cut into a cell with a ∥ ``direction``, b in the plane, c out of
    it, the fault plane at the cell boundary (z = 0) in the ``gap`` chosen.

    ``plane``: Miller indices (h k l) and ``direction``: [u v w], both in the basis of ``conv``
    (h·u must be 0; hexagonal cells: :func:`~.base.miller_bravais` converts four indices).  b is the
    shortest lattice vector in the plane not parallel to a; c the shortest lattice vector along the plane
    normal, or where none is (hcp pyramidal planes: the normal of an irrational c/a is no lattice
    direction) the lattice vector one lattice plane up (h·c = gcd(h)) with the smallest component in
    the plane.  Vectors are searched among small integer vectors; the cell is cut with ASE
    ``ase.build.cut`` and rotated so that a ∥ x, b in the xy plane, z ∥ the plane normal.

    ``gap``: where the plane's atomic layers are unevenly spaced (hcp prism and pyramidal I planes
    alternate narrow and wide gaps), "wide" puts the fault (the cell boundary) in the middle of the
    widest gap between adjacent layers (:func:`layers`), "narrow" in the narrowest; with even spacing
    both are the same cell.

    Raises
    ------
    ParamError
        if the plane or the direction is zero, or the direction is not in the plane.
    """
    from ase.build import cut
    from ase.geometry import cell_to_cellpar, cellpar_to_cell
    h, u = np.array(plane, float), np.array(direction, float)
    if not h.any() or not u.any():
        raise ParamError(f"properties[gamma]: plane {list(plane)}, slip_direction {list(direction)}: all zero; "
                         "give a plane and a direction in it")
    if abs(h @ u) > 1e-8:
        raise ParamError(f"properties[gamma]: slip_direction {list(direction)} is not in the plane "
                         f"{list(plane)} (h·u = {h @ u:g}, must be 0); give a direction in the plane")
    cell = conv.cell.array
    normal = h @ np.linalg.inv(cell).T  # reciprocal-lattice vector of the plane (Cartesian)
    unit = normal / np.linalg.norm(normal)
    a_cart = u @ cell
    in_plane = [v for v in _lattice_vectors(3) if abs(h @ v) < 1e-8
                and np.linalg.norm(np.cross(v @ cell, a_cart)) > 1e-6]
    along_n = [v for v in _lattice_vectors(6) if np.linalg.norm(np.cross(v @ cell, unit)) < 1e-6 * np.linalg.norm(v @ cell)
               and (v @ cell) @ normal > 0]
    key = lambda v: (round(float(np.linalg.norm(v @ cell)), 6), tuple(-v))  # noqa: E731
    b = min(in_plane, key=key)
    if along_n:
        c = min(along_n, key=key)
    else:
        up = [v for v in _lattice_vectors(3) if h @ v > 0.5]
        lowest = min(h @ v for v in up)
        slant = lambda v: np.linalg.norm(np.cross(v @ cell, unit))  # noqa: E731
        c = min((v for v in up if h @ v == lowest), key=lambda v: (round(float(slant(v)), 6), tuple(-v)))
    if np.linalg.det(np.array([u, b, c])) < 0:
        b = -b
    atoms = cut(conv, a=u, b=b, c=c)
    atoms.set_cell(cellpar_to_cell(cell_to_cellpar(atoms.cell.array)), scale_atoms=True)
    z, gaps = layers(atoms)
    j = int(np.argmax(gaps) if gap == "wide" else np.argmin(gaps))
    atoms.positions[:, 2] -= z[j] + gaps[j] / 2
    atoms.wrap()
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


def stacking_faults(fraction: list[float], gamma: list[float]) -> dict:
    """Stacking-fault energies read off a γ-line (J/m², fractions of the slip length).

    The stable fault is the first interior local minimum (γ[i-1] > γ[i] <= γ[i+1]); the unstable
    one is the maximum before it (the barrier a dislocation crosses to make the fault; with no
    stable fault, the maximum of the line).  Where the line is a full lattice period (its end within
    1 % of its range of γ(0): the perfect crystal again) the fault is reached from either end, and
    the unstable one is the lower of the maxima before and after the stable one (hcp basal [1-100]
    meets the atop position before the I2 fault or after it, depending on the sign of the direction
    and the stacking at the cut).  Each is refined on a cubic spline through the points (scipy
    ``CubicSpline``, periodic for a full period, else not-a-knot; lines of 4 points or more) between
    the point's two neighbours: a line of n_steps 10 or more gives them to a few per cent, also where
    the minimum is narrow and lopsided (EMT hcp Cu basal I2 at n_steps 12: 4 % low, at 24: within
    1 %; a three-point parabola was 60 % low at 12).

    Returns
    -------
    ``{"unstable_J_m2", "unstable_at", "stable_J_m2", "stable_at"}``; the stable pair is None
    where the line has no interior minimum (bcc {110}<111>, for example).
    """
    from scipy.interpolate import CubicSpline
    x, y = np.asarray(fraction, float), np.asarray(gamma, float)
    minima = [i for i in range(1, len(y) - 1) if y[i - 1] > y[i] <= y[i + 1]]
    periodic = abs(y[-1] - y[0]) <= 0.01 * np.ptp(y)
    end = minima[0] if minima else len(y) - 1
    top = int(np.argmax(y[:end + 1]))
    if minima and periodic:
        after = end + int(np.argmax(y[end:]))
        top = after if y[after] < y[top] else top
    if len(y) >= 4:
        spline = CubicSpline(x, np.r_[y[:-1], y[0]] if periodic else y, bc_type="periodic" if periodic else "not-a-knot")

    def refine(i: int, sign: float) -> tuple[float, float]:
        if len(y) < 4 or i in (0, len(y) - 1):
            return float(x[i]), float(y[i])
        grid = np.linspace(x[i - 1], x[i + 1], 2001)
        k = int(np.argmax(sign * spline(grid)))
        return float(grid[k]), float(spline(grid[k]))

    us_at, us = refine(top, 1.0)
    sf_at, sf = refine(minima[0], -1.0) if minima else (None, None)
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

#: named slip systems of hexagonal lattices: plane (h k i l), direction [u v t w], the gap the fault is
#: put in (None: ``fault_gap``'s).  Planes and directions as in APEX's table (README 4.10) and Yin et al.,
#: Acta Mater. 123, 223 (2017); pyramidal I has a narrow and a wide gap between its atomic layers
HCP_SLIP = {
    "basal": ([0, 0, 0, 1], [1, -1, 0, 0], None),  # through the I2 fault (a/3<1-100>), period √3 a
    "basal_a": ([0, 0, 0, 1], [1, 1, -2, 0], None),  # along the <a> Burgers vector, period a
    "prism": ([1, 0, -1, 0], [1, -2, 1, 0], None),  # <a>, period a
    "pyramidal_I_wide": ([1, 0, -1, 1], [-1, 2, -1, 0], "wide"),  # <a>, period a
    "pyramidal_I_narrow": ([1, 0, -1, 1], [-1, 2, -1, 0], "narrow"),
    "pyramidal_II": ([1, 1, -2, 2], [-1, -1, 2, 3], None),  # <c + a>, period √(a² + c²)
}


@register
class Gamma(Property):
    """γ(d) = (E(d) - E(0)) / A in J/m², A = |a x b|, the slip cell (:func:`slip_cell`) repeated
    ``supercell_size`` times; atoms relax along the plane normal only (``add_fix``), the cell is fixed.
    With ``min_vacuum_size`` 0 the cell's c vector is tilted by d along the slip direction (one fault
    per cell, at the cell boundary, no surface); with a vacuum (DP-GEN's slab) the upper n - n // 2 of
    the n repeats along c slide by d (DP-GEN: the atoms above the middle; the same cut for even n).

    Keys: ``plane_miller`` [h, k, l] and ``slip_direction`` [u, v, w] (conventional standard cell,
    pymatgen; APEX's names), or DP-GEN's ``miller_index`` and ``displace_direction`` (a direction
    family: DP-GEN's slip systems 100/010, 110/111, 111/110, 111/112, 112/111 and 123/111 slip along
    the member it picks, :data:`DPGEN_SLIP`; any other pair must have the direction in the plane).
    For a hexagonal lattice both key pairs take four Miller-Bravais indices, (h k i l) with
    i = -(h + k) and [u v t w] with t = -(u + v) (:func:`~.base.miller_bravais`; three are refused:
    DP-GEN's own gamma builds no hcp slab), or ``slip_system`` names one of :data:`HCP_SLIP`.
    ``fault_gap`` ("wide", default, or "narrow"): the gap between adjacent atomic layers the fault is
    put in, where the plane's layers are unevenly spaced (hcp prism and pyramidal I; :func:`slip_cell`).
    ``lattice_type`` (DP-GEN's "fcc" / "bcc", "hcp": checked against the structure),
    ``supercell_size`` (repetitions of the slip cell; default [1, 1, 2], DP-GEN's [1, 1, 5] with its
    keys; where the slip cell's c is not normal to the plane at least the repeats 10 Å thick),
    ``min_vacuum_size`` (Å; default 0, DP-GEN's 20 with its keys; a slab needs >= 2 repeats along c),
    ``add_fix`` (frozen Cartesian axes, DP-GEN's ["true", "true", "false"]), ``slip_length`` (Å; default
    |slip_direction| (four indices: the shortest lattice vector along it, e.g. a for <11-20>), or with
    DP-GEN's keys its one lattice period along the direction, :func:`period`: b = a/2<110> in fcc),
    ``n_steps`` (points after d = 0, default 10).
    The unstable and stable stacking-fault energies are read off the line (:func:`stacking_faults`).

    ``relax_height`` (default: true in the tilted cell when ``relax_pos`` is): the tilted cell's
    height relaxes to zero σ_zz (:data:`~dpgen_lite.autotest.task.DEFAULT_SETTING`), so the fault
    opens along its normal as in a slab.  At fixed height it cannot, and γ falls as 1/thickness
    towards the slab's value (EMT hcp Cu, pyramidal I wide γ_us: 0.743, 0.704, 0.685 J/m² at 12, 23,
    47 Å; slab 0.666 at 12 and 23 Å).
    """

    name = "gamma"
    default_setting = {"relax_pos": True, "relax_shape": False, "relax_vol": False}

    @classmethod
    def args(cls):
        return [_a("plane_miller", list, "Miller indices of the slip plane ([h, k, i, l] for hexagonal lattices)",
                   default=None),
                _a("slip_direction", list, "slip direction, lattice-vector indices ([u, v, t, w] for hexagonal "
                   "lattices)", default=None),
                _a("miller_index", list, "DP-GEN's name of the slip plane", default=None),
                _a("displace_direction", list, "DP-GEN's slip direction (family)", default=None),
                _a("slip_system", str, f"a named hcp slip system: {', '.join(HCP_SLIP)}", default=None),
                _a("fault_gap", str, "wide or narrow: the gap between atomic layers the fault is put in",
                   default=None),
                _a("lattice_type", str, "fcc, bcc or hcp: checked against the structure", default=None),
                _a("supercell_size", list, "repetitions of the slip cell", default=None),
                _a("min_vacuum_size", [int, float], "vacuum along the normal, Å (0: tilted cell)", default=None),
                _a("add_fix", list, "per Cartesian axis, whether atoms stay fixed", default=["true", "true", "false"]),
                _a("slip_length", float, "length of the γ-line, Å (default |slip_direction|)", default=None),
                _a("n_steps", int, "displacements after 0", default=10),
                _a("relax_height", bool, "tilted cell: relax its height (default: when relax_pos)", default=None)]

    @property
    def dpgen_keys(self) -> bool:
        """Whether the slip system is given with DP-GEN's keys (its defaults then apply)."""
        return self.conf.get("miller_index") is not None

    def slip_system(self, hexagonal: bool) -> tuple[list, list, str]:
        """(plane, direction, gap) in the conventional standard cell (three indices; ``hexagonal``:
        the structure's lattice is, and four Miller-Bravais indices are converted).

        Raises
        ------
        ParamError
            for a missing or doubly given plane / direction, a ``slip_system`` not known or not on a
            hexagonal lattice, three indices on a hexagonal lattice, four that break i = -(h + k) or
            t = -(u + v), a direction not in the plane, or a DP-GEN pair out of its table whose
            direction is not in the plane.
        """
        c = self.conf
        named, gap = c.get("slip_system"), c.get("fault_gap")
        if gap not in (None, "wide", "narrow"):
            raise ParamError(f"properties[gamma].fault_gap = {gap!r}: need 'wide' or 'narrow'")
        if named is not None:
            given = [k for k in ("plane_miller", "slip_direction", "miller_index", "displace_direction")
                     if c.get(k) is not None]
            if named not in HCP_SLIP or not hexagonal or given:
                raise ParamError(f"properties[gamma].slip_system = {named!r}: " + (
                    f"not one of {', '.join(HCP_SLIP)}" if named not in HCP_SLIP else
                    "the named slip systems are hcp's, and the structure's lattice is not hexagonal; give "
                    "plane_miller and slip_direction" if not hexagonal else
                    f"give it without {', '.join(given)}"))
            plane, direction, fixed = HCP_SLIP[named]
            if fixed and gap not in (None, fixed):
                raise ParamError(f"properties[gamma].fault_gap = {gap!r} with slip_system = {named!r}, whose gap "
                                 f"is {fixed!r}; remove fault_gap or name the other system")
            return list(three_index(plane)), list(direction_three_index(direction)), fixed or gap or "wide"
        pairs = (("plane_miller", "miller_index"), ("slip_direction", "displace_direction"))
        for new, old in pairs:
            if (c.get(new) is None) == (c.get(old) is None):
                raise ParamError(f"properties[gamma]: {new} = {c.get(new)!r}, {old} = {c.get(old)!r}: give "
                                 f"exactly one of them, or slip_system")
        if (c.get("plane_miller") is None) != (c.get("slip_direction") is None):
            raise ParamError("properties[gamma]: give plane_miller with slip_direction, or DP-GEN's miller_index "
                             "with displace_direction")
        plane_key, dir_key = pairs[0][self.dpgen_keys], pairs[1][self.dpgen_keys]
        if hexagonal:
            where = f"properties[gamma].{plane_key} = {c[plane_key]!r}"
            plane = list(miller_bravais(where, c[plane_key], example="[0, 0, 0, 1] for the basal plane, or "
                                        f"slip_system: one of {', '.join(HCP_SLIP)}"))
            direction = list(miller_bravais(f"properties[gamma].{dir_key} = {c[dir_key]!r}", c[dir_key], True,
                                            example="[1, 1, -2, 0]"))
            zone = int(np.dot(c[plane_key], c[dir_key]))
            if zone:
                raise ParamError(f"properties[gamma].{dir_key} = {c[dir_key]}: not in the plane {plane_key} = "
                                 f"{c[plane_key]} (hu + kv + it + lw = {zone}, must be 0); give a direction in "
                                 "the plane, e.g. [1, 1, -2, 0] in (0, 0, 0, 1)")
            return plane, direction, gap or "wide"
        if not self.dpgen_keys:
            check_vector(c, "plane_miller", 3)
            check_vector(c, "slip_direction", 3, float)
            return c["plane_miller"], c["slip_direction"], gap or "wide"
        plane, family = c["miller_index"], c["displace_direction"]
        check_vector(c, "miller_index", 3)
        check_vector(c, "displace_direction", 3)
        picked = DPGEN_SLIP.get((tuple(plane), tuple(family)))
        if picked is None and np.dot(plane, family) != 0:
            known = ", ".join(f"{''.join(map(str, p))}/{''.join(map(str, d))}" for p, d in DPGEN_SLIP)
            raise ParamError(f"properties[gamma]: miller_index = {plane}, displace_direction = {family}: not one of "
                             f"DP-GEN's slip systems ({known}) and the direction is not in the plane; give a "
                             "direction in the plane")
        return plane, list(picked or family), gap or "wide"

    def size(self, cell) -> list[int]:
        """``supercell_size``, or the default of the key family used (``cell``: the slip cell)."""
        if self.conf["supercell_size"]:
            return self.conf["supercell_size"]
        n = 5 if self.dpgen_keys else 2
        if np.linalg.norm(cell.cell[2, :2]) > 1e-6:  # c not normal to the plane: a thin cell
            n = max(n, int(np.ceil(10.0 / cell.cell[2, 2] - 1e-9)))
        return [1, 1, n]

    def vacuum(self) -> float:
        """``min_vacuum_size`` (Å), or the default of the key family used."""
        v = self.conf["min_vacuum_size"]
        return float(v if v is not None else (20 if self.dpgen_keys else 0))

    def system(self, structure):
        """(lattice name or None, conventional cell, plane, direction, gap) of ``structure``
        (:func:`~.interstitial.conventional`, :meth:`slip_system`)."""
        from pymatgen.io.ase import AseAtomsAdaptor

        from .interstitial import conventional
        lattice, conv = conventional(structure)
        hexagonal = is_hexagonal(AseAtomsAdaptor.get_structure(structure))
        return (lattice, conv, *self.slip_system(hexagonal))

    def check(self, structure):
        lattice, conv, plane, direction, gap = self.system(structure)
        check_vector(self.conf, "supercell_size", 3)
        fix = self.conf["add_fix"]
        if len(fix) != 3 or any(str(x).lower() not in ("true", "false") for x in fix):
            raise ParamError(f"properties[gamma].add_fix = {fix!r}: need three of true / false (DP-GEN: "
                             "\"true\" / \"false\"), one per Cartesian axis")
        if self.conf["n_steps"] < 1 or self.vacuum() < 0:
            raise ParamError(f"properties[gamma]: n_steps = {self.conf['n_steps']} (need >= 1), min_vacuum_size = "
                             f"{self.conf['min_vacuum_size']} (need >= 0)")
        want = self.conf["lattice_type"]
        if want is not None and want != lattice:
            raise ParamError(f"properties[gamma].lattice_type = {want!r}, but the structure is "
                             f"{lattice or 'not fcc, bcc or hcp'}; give the structure's lattice")
        cell = slip_cell(conv, plane, direction, gap)
        if self.vacuum() > 0 and self.size(cell)[2] < 2:
            raise ParamError(f"properties[gamma].supercell_size = {self.conf['supercell_size']} with min_vacuum_size "
                             f"{self.vacuum():g}: the slab needs >= 2 repeats along c (the upper half slides)")

    def task_setting(self, meta):
        setting = self.setting()
        height = self.conf["relax_height"]
        return {**setting, "fix_axes": [str(x).lower() == "true" for x in self.conf["add_fix"]],
                "relax_height": self.vacuum() == 0 and (setting["relax_pos"] if height is None else height)}

    def make(self, relaxed, folder):
        _, conv, plane, direction, gap = self.system(relaxed)
        cell = slip_cell(conv, plane, direction, gap)
        size = self.size(cell)
        base = cell.repeat(tuple(size))
        length = self.conf["slip_length"] or (period(conv, direction) if self.dpgen_keys
                                              else float(np.linalg.norm(base.cell[0]) / size[0]))
        vacuum = self.vacuum()
        upper = base.get_scaled_positions()[:, 2] > (size[2] // 2) / size[2]
        if vacuum > 0:
            base.center(vacuum=vacuum / 2, axis=2)
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
