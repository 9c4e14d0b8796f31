"""Melting point by solid-liquid coexistence (LAMMPS molecular dynamics).

Method: Morris, Wang, Ho and Chan, Phys. Rev. B 49, 3109 (1994); Morris and Song, J. Chem. Phys.
116, 9352 (2002).  One task on a supercell of the relaxed crystal, elongated along its third cell
vector c (the interfaces are normal to c); the atoms are ordered by their fractional c coordinate,
the first half (c < 1/2) is the liquid-to-be.  Four LAMMPS stages, the time step continuing:

1. melt (``melt_steps``): the first half at ``melt_temperature`` (Nosé-Hoover NPT with the box free
   along c only, only that half integrated and dilated); the other half is held still, a crystal;
2. npt (``npt_steps``): every atom at the guess ``temperature``, NPT at zero pressure with the
   three box lengths free (``aniso``): the lattice takes its thermal expansion, the liquid its
   density, while the interfaces hardly move;
3. equilibrate (``equilibrate_steps``): NPH at zero pressure (``aniso``), no thermostat: the
   enthalpy is conserved, so solid melts (cooling) or liquid freezes (heating) until the cell sits
   at the coexistence temperature; discarded;
4. production (``production_steps``): NPH continued; the cell's temperature (averaged over every
   step, written every ``trace_every`` steps to ``melting_trace.txt``) is cut into blocks of
   ``block_steps``: T_m = mean of the block means, its standard error = their standard deviation
   / sqrt(number of blocks) (the blocks are taken as independent: choose them longer than the
   temperature's correlation time).

Both phases must still be there at the end: over the last block each atom's mean square excursion
about its mean position gives a Lindemann ratio δ = sqrt(<|r - <r>|²>) / d_nn (d_nn the nearest
distance of the relaxed crystal; LAMMPS ``compute displace/atom`` averaged by ``fix ave/atom``,
written to ``lindemann.txt``).  Atoms of a crystal vibrate with δ ≈ 0.1-0.15 up to melting
(Lindemann's criterion; ≈ 0.17 here for Mishin's Cu EAM at T_m, slab drift included), atoms of the
liquid wander off: δ ≈ 0.4 over 4 ps.  A slab (one repetition of the cell along c) is solid when its
median δ is below :data:`LINDEMANN_SOLID`; coexistence holds when there is at least one solid slab and
one liquid slab.  Otherwise no T_m is given and the result says which way to move ``temperature``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..calculators.lammps import CONF_FILE, DUMP_FILE, INPUT_FILE, OUT_FILE, Lammps, dump_line, print_line
from .base import ParamError, Property, _a, check_vector, register, supercell, table

#: temperature, potential energy, pressure and volume, averaged over every step, every ``trace_every`` steps
TRACE_FILE = "melting_trace.txt"
#: per atom at the end: id, fractional c coordinate, mean square excursion over the last block (Å²)
LINDEMANN_FILE = "lindemann.txt"
#: a slab whose median Lindemann ratio is below this is solid (see the module's text)
LINDEMANN_SOLID = 0.25
#: the last block is the window of the Lindemann ratio: shorter, liquid atoms have not moved far enough
MIN_BLOCK_PS = 2.0
#: fewest blocks for a standard error (with 5 blocks the error estimate itself is uncertain by ~35 %)
MIN_BLOCKS = 5
#: velocity seeds of the melt and npt stages (the run is reproducible on one machine)
SEEDS = (4928459, 7718231)
PLOT_FILE = "melting.png"


def block_stats(values: np.ndarray, per_block: int) -> tuple[float, float, np.ndarray]:
    """Mean, standard error and block means of ``values`` (1-D) cut into consecutive blocks of
    ``per_block`` samples (a trailing partial block is dropped): mean of the block means, their
    standard deviation (ddof 1) / sqrt(number of blocks) (Flyvbjerg and Petersen, J. Chem. Phys. 91,
    461 (1989), one blocking level).

    Raises
    ------
    ValueError
        for fewer than two whole blocks.
    """
    n = len(values) // per_block
    if n < 2:
        raise ValueError(f"{len(values)} samples make {n} block(s) of {per_block}; need 2 or more")
    means = np.asarray(values[: n * per_block], dtype=float).reshape(n, per_block).mean(axis=1)
    return float(means.mean()), float(means.std(ddof=1) / math.sqrt(n)), means


def nearest_distance(atoms) -> float:
    """Shortest interatomic distance of ``atoms`` (Å, minimum image; the supercell must be at least
    twice the nearest distance in every direction)."""
    return float(atoms.get_distances(0, range(1, len(atoms)), mic=True).min())


@register
class Melting(Property):
    """Melting point T_m (K) with its standard error by solid-liquid coexistence (NPH), LAMMPS interactions only.

    Keys: ``temperature`` (guess of T_m, K, required), ``melt_temperature`` (K, default 2 x temperature),
    ``supercell`` (3 ints, repetitions of the relaxed cell; the third, normal to the interfaces, the
    longest; default [6, 6, 12]), ``timestep`` (ps, default 0.002), ``melt_steps`` (default 10000),
    ``npt_steps`` (default 2500), ``equilibrate_steps`` (default 25000), ``production_steps``
    (default 100000, a multiple of ``block_steps``, at least 5 blocks), ``block_steps`` (default
    10000, at least 2 ps), ``trace_every`` (steps per row of the temperature trace, default 100).
    Zero pressure.  Stages and analysis: see :mod:`dpgen_lite.autotest.properties.melting`.
    """

    name = "melting"
    not_derived = "its one task is a long MD run, not a structure to restart or recompute; lengthen production_steps instead"
    default_setting = {"relax_pos": False, "relax_shape": False, "relax_vol": False}

    @classmethod
    def args(cls):
        return [
            _a("temperature", [int, float], "guess of the melting point, K (the npt stage's temperature)"),
            _a("melt_temperature", [int, float, type(None)], "temperature melting the first half, K "
               "(default 2 x temperature)", default=None),
            _a("supercell", list, "repetitions of the relaxed cell; interfaces normal to the third", default=[6, 6, 12]),
            _a("timestep", [int, float], "MD time step, ps", default=0.002),
            _a("melt_steps", int, "steps melting half the cell", default=10000),
            _a("npt_steps", int, "NPT steps of the whole cell at the guess temperature", default=2500),
            _a("equilibrate_steps", int, "NPH steps discarded", default=25000),
            _a("production_steps", int, "NPH steps averaged (a multiple of block_steps)", default=100000),
            _a("block_steps", int, "steps per block of the temperature average", default=10000),
            _a("trace_every", int, "steps per row of the temperature trace", default=100),
        ]

    # ---- keys ---------------------------------------------------------------------------
    def check(self, structure):
        """Keys: positive temperatures and steps, melt_temperature above temperature, a supercell
        with at least 4 repetitions along c, at least 5 blocks of at least 2 ps in production, block
        and stage lengths multiples of ``trace_every``.

        Raises
        ------
        ParamError
            naming the key, the value and what is allowed.
        """
        c = self.conf
        where = "properties[melting]"
        check_vector(c, "supercell", 3)
        dt = c["timestep"]
        checks = (  # (key, test, what is allowed), tested in order (later tests divide by earlier keys)
            ("supercell", lambda: min(c["supercell"]) >= 1 and c["supercell"][2] >= 4,
             lambda: "positive, with at least 4 repetitions along c (half of them melt), e.g. [6, 6, 12]"),
            ("temperature", lambda: c["temperature"] > 0, lambda: "> 0 (K)"),
            ("timestep", lambda: dt > 0, lambda: "> 0 (ps; 0.001-0.002 for metals)"),
            ("melt_steps", lambda: c["melt_steps"] >= 1, lambda: "an integer >= 1"),
            ("npt_steps", lambda: c["npt_steps"] >= 0, lambda: "an integer >= 0"),
            ("equilibrate_steps", lambda: c["equilibrate_steps"] >= 0, lambda: "an integer >= 0"),
            ("trace_every", lambda: c["trace_every"] >= 1, lambda: "an integer >= 1"),
            ("block_steps", lambda: c["block_steps"] >= 1 and c["block_steps"] % c["trace_every"] == 0,
             lambda: f"a positive multiple of trace_every = {c['trace_every']}"),
            ("block_steps", lambda: c["block_steps"] * dt >= MIN_BLOCK_PS,
             lambda: f">= {math.ceil(MIN_BLOCK_PS / dt)} steps ({MIN_BLOCK_PS} ps at timestep {dt} ps): the last "
                     "block is the window telling solid from liquid atoms"),
            ("production_steps", lambda: c["production_steps"] % c["block_steps"] == 0
             and c["production_steps"] >= MIN_BLOCKS * c["block_steps"],
             lambda: f"a multiple of block_steps = {c['block_steps']}, at least {MIN_BLOCKS} blocks "
                     f"(>= {MIN_BLOCKS * c['block_steps']})"),
            ("equilibrate_steps", lambda: self.start_step() % c["trace_every"] == 0,
             lambda: f"such that melt_steps + npt_steps + equilibrate_steps = {self.start_step()} is a multiple "
                     f"of trace_every = {c['trace_every']}"))
        for key, ok, allowed in checks:
            if not ok():
                raise ParamError(f"{where}.{key} = {c[key]!r}: must be {allowed()}")
        if self.melt_temperature() <= c["temperature"]:
            raise ParamError(f"{where}.melt_temperature = {c['melt_temperature']!r}: must be above temperature = "
                             f"{c['temperature']} K (well above the melting point, e.g. 2 x temperature)")

    def check_interaction(self, calc, where):
        """Only LAMMPS interactions (``lammps``, ``eam*``, ``meam``, ``deepmd``) run the MD.

        Raises
        ------
        ParamError
            for any other interaction type, naming it and the fix.
        """
        if not isinstance(calc, Lammps):
            raise ParamError(f"{where}: interaction {calc.inter['name']!r} (type {calc.inter['type']!r}): melting runs "
                             "LAMMPS molecular dynamics; give the potential as a LAMMPS interaction (eam_alloy, eam_fs, "
                             "eam, meam, deepmd, or lammps with pair_style / pair_coeff) or skip melting for it")

    def melt_temperature(self) -> float:
        """``melt_temperature``, default 2 x ``temperature`` (K)."""
        return float(self.conf["melt_temperature"] or 2 * self.conf["temperature"])

    def start_step(self) -> int:
        """First step of production (melt + npt + equilibrate steps)."""
        c = self.conf
        return c["melt_steps"] + c["npt_steps"] + c["equilibrate_steps"]

    # ---- task ---------------------------------------------------------------------------
    def make(self, relaxed, folder):
        atoms = supercell(relaxed, self.conf["supercell"])
        frac = atoms.get_scaled_positions(wrap=True)[:, 2]
        atoms = atoms[np.argsort(frac, kind="stable")]
        n_melt = int((np.sort(frac) < 0.5 - 1e-8).sum())
        return [(atoms, {"n_melt": n_melt, "d_nn_A": nearest_distance(atoms), "slabs": self.conf["supercell"][2]})]

    def write_inputs(self, calc, task_dir, atoms, setting, meta):
        """``conf.lmp`` and ``in.lammps`` of the four stages (module text), ending with the final
        structure and energy as every LAMMPS task (``dump.final``, ``lammps_out.json``)."""
        c, dt = self.conf, self.conf["timestep"]
        tg, tm = c["temperature"], self.melt_temperature()
        tdamp, pdamp = 100 * dt, 1000 * dt  # LAMMPS manual, fix nh: ~100 and ~1000 time steps
        block, total = c["block_steps"], self.start_step() + c["production_steps"]
        every = math.gcd(10, block)
        calc.write_conf(Path(task_dir) / CONF_FILE, atoms)
        lines = [
            *calc.start_lines(CONF_FILE),
            f"timestep {dt}", f"group melt id 1:{meta['n_melt']}",
            f"thermo {c['trace_every'] * 10}", "thermo_style custom step temp pe press lx ly lz",
            "variable vol equal vol",
            f"fix trace all ave/time 1 {c['trace_every']} {c['trace_every']} c_thermo_temp c_thermo_pe "
            f"c_thermo_press v_vol file {TRACE_FILE}",
            "# 1. melt the first half, the second held still",
            f"velocity melt create {tm} {SEEDS[0]} mom yes rot no dist gaussian",
            "compute tmelt melt temp",
            f"fix melt melt npt temp {tm} {tm} {tdamp} z 0.0 0.0 {pdamp} dilate melt",
            "fix_modify melt temp tmelt",
            f"run {c['melt_steps']}", "unfix melt",
            "# 2. the whole cell at the guess temperature, zero pressure",
            f"velocity all create {tg} {SEEDS[1]} mom yes rot no dist gaussian",
            f"fix npt all npt temp {tg} {tg} {tdamp} aniso 0.0 0.0 {pdamp}",
            f"run {c['npt_steps']}", "unfix npt",
            "# 3-4. NPH: equilibration, production",
            f"fix nph all nph aniso 0.0 0.0 {pdamp}",
            f"run {c['equilibrate_steps'] + c['production_steps'] - block}",
            "# the last block: mean square excursion of each atom about its mean position",
            "compute d all displace/atom",
            *[f"variable d{k}2 atom c_d[{i}]^2" for i, k in enumerate("xyz", 1)],
            f"fix ex all ave/atom {every} {block // every} {total} c_d[1] c_d[2] c_d[3] v_dx2 v_dy2 v_dz2",
            "variable msd atom f_ex[4]+f_ex[5]+f_ex[6]-f_ex[1]^2-f_ex[2]^2-f_ex[3]^2",
            f"dump ex all custom {total} {LINDEMANN_FILE} id zs v_msd",
            "dump_modify ex sort id format float %.10g",
            f"run {block}", "undump ex",
            dump_line(DUMP_FILE), print_line(OUT_FILE),
        ]
        (Path(task_dir) / INPUT_FILE).write_text("\n".join(lines) + "\n")
        return [CONF_FILE, INPUT_FILE]

    def task_backward_files(self, calc, meta):
        return [*calc.backward_files, TRACE_FILE, LINDEMANN_FILE]

    # ---- analysis -----------------------------------------------------------------------
    def post(self, results, metas, relaxed, folder):
        c, meta = self.conf, metas[0]
        task = Path(folder) / "task.000000"
        trace = np.loadtxt(task / TRACE_FILE, comments="#", ndmin=2)  # step, T (K), pe (eV), p (bar), V (Å³)
        start, dt = self.start_step(), c["timestep"]
        prod = trace[(trace[:, 0] > start) & (trace[:, 0] <= start + c["production_steps"])]
        tm, err, blocks = block_stats(prod[:, 1], c["block_steps"] // c["trace_every"])
        ex = np.loadtxt(task / LINDEMANN_FILE, skiprows=9, ndmin=2)  # id, zs, msd (Å²)
        delta = np.sqrt(np.clip(ex[:, 2], 0, None)) / meta["d_nn_A"]
        slab = np.minimum((np.mod(ex[:, 1], 1.0) * meta["slabs"]).astype(int), meta["slabs"] - 1)
        medians = [float(np.median(delta[slab == k])) if np.any(slab == k) else float("nan")
                   for k in range(meta["slabs"])]
        solid = [m < LINDEMANN_SOLID for m in medians]
        coexist = any(solid) and not all(solid)
        res = {
            "Tm_K": tm if coexist else None, "Tm_stderr_K": err if coexist else None, "coexistence": coexist,
            "production_mean_K": tm, "production_stderr_K": err,
            "block_temperatures_K": blocks.tolist(), "n_blocks": len(blocks), "block_steps": c["block_steps"],
            "block_ps": c["block_steps"] * dt, "production_steps": c["production_steps"],
            "production_ps": c["production_steps"] * dt, "timestep_ps": dt, "natoms": len(results[0].atoms),
            "supercell": c["supercell"], "guess_temperature_K": c["temperature"],
            "melt_temperature_K": self.melt_temperature(),
            "pressure_bar": float(prod[:, 3].mean()), "solid_fraction": float((delta < LINDEMANN_SOLID).mean()),
            "slab_lindemann": medians, "lindemann_solid": LINDEMANN_SOLID,
            "stages_steps": {k: c[f"{k}_steps"] for k in ("melt", "npt", "equilibrate", "production")},
            "plot": PLOT_FILE,
        }
        if not coexist:
            side = ("solid", "raise") if all(solid) else ("liquid", "lower")
            res["message"] = (f"not a coexistence: the cell ended all {side[0]} (every slab's median Lindemann ratio "
                              f"{'below' if all(solid) else 'above'} {LINDEMANN_SOLID}); {side[1]} "
                              f"properties[melting].temperature = {c['temperature']} K and run again")
        self.draw(res, trace, Path(folder) / PLOT_FILE)
        return res

    def draw(self, res: dict, trace: np.ndarray, path: Path) -> None:
        """Temperature trace (K against ps) with the stages, the production blocks and T_m ± its
        error, and the slabs' Lindemann ratios, as a PNG (matplotlib, Agg canvas)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        c, dt = self.conf, self.conf["timestep"]
        fig = Figure(figsize=(9, 3.6), layout="constrained")
        FigureCanvasAgg(fig)
        ax, bx = fig.subplots(1, 2, width_ratios=[3, 1])
        ax.plot(trace[:, 0] * dt, trace[:, 1], lw=0.6, color="0.4", label=f"T (mean of {c['trace_every']} steps)")
        edge = 0
        for k in ("melt", "npt", "equilibrate"):
            edge += c[f"{k}_steps"]
            ax.axvline(edge * dt, color="k", ls=":", lw=0.8)
        t0 = self.start_step() * dt
        for k, b in enumerate(res["block_temperatures_K"]):
            ax.hlines(b, t0 + k * res["block_ps"], t0 + (k + 1) * res["block_ps"], color="C0", lw=2,
                      label="block means" if k == 0 else None)
        mean, err = res["production_mean_K"], res["production_stderr_K"]
        ax.axhspan(mean - err, mean + err, color="C1", alpha=0.3,
                   label=f"T_m = {mean:.0f} ± {err:.0f} K" if res["coexistence"] else "no coexistence")
        ax.set_ylim(0.8 * c["temperature"], 1.2 * c["temperature"])
        ax.set_xlabel("time (ps): melt | npt | NPH equilibrate | NPH production")
        ax.set_ylabel("temperature (K)")
        ax.legend(fontsize=8, loc="lower right")
        bx.plot(res["slab_lindemann"], np.arange(len(res["slab_lindemann"])) + 0.5, "o-")
        bx.axvline(res["lindemann_solid"], color="k", ls=":")
        bx.set_xlabel("median Lindemann ratio")
        bx.set_ylabel("slab along c (end of run)")
        fig.savefig(path, dpi=110)

    def report(self, res):
        head = "Melting point (solid-liquid coexistence, NPH)\n"
        rows = [("natoms", res["natoms"]), ("supercell", "x".join(map(str, res["supercell"]))),
                ("guess T (K)", res["guess_temperature_K"]),
                ("production (ps)", f"{res['production_ps']:g} ({res['production_steps']} steps)"),
                ("blocks", f"{res['n_blocks']} x {res['block_ps']:g} ps"),
                ("solid fraction at end", f"{res['solid_fraction']:.2f}"),
                ("mean pressure (bar)", f"{res['pressure_bar']:.0f}")]
        if res["coexistence"]:
            rows.insert(0, ("T_m (K)", f"{res['Tm_K']:.1f} ± {res['Tm_stderr_K']:.1f}"))
        else:
            head += f"REFUSED: {res['message']}\n"
        return head + table(rows, ("quantity", "value"))

    @classmethod
    def scalars(cls, res):
        return {"Tm (K)": res["Tm_K"]} if res.get("coexistence") else {}
