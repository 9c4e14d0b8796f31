"""The LAMMPS engine: MD driven by the model ensemble through deepmd-kit's ``pair_style deepmd``.

A job gives conditions (``ensemble``, ``temps``, ``press``, ``nsteps``...), for which the
input is generated here (:func:`lammps_input`), or a DP-GEN template (:mod:`.template`).
Every task runs ``pair_style deepmd graph.000.pb graph.001.pb ... out_freq trj_freq
out_file model_devi.out`` in units ``metal`` (Å, eV, ps, bar, K) and dumps the
trajectory every ``trj_freq`` steps to ``traj.dump``, so dump frame k is row k of
``model_devi.out``.
"""

from __future__ import annotations

from pathlib import Path

import dpdata
from dargs import Argument

from ..context import masses as type_masses
from ..dispatch import TaskSpec, executable, local_python
from ..lammps_exe import lmp_command
from ..params import arg, require
from ..select.model_devi import dump_rms_force
from .base import (ERR_FILE, MODEL_DEVI_FILE, OUT_FILE, Engine, check_md_job, md_conditions, md_job_args,
                   register, relative_keywords, velocity_seed)
from .outcome import LOG_FILE, TRAJ_FILE, align, check_tasks
from .template import check_templates, revise, revisions, template_nsteps, uses_template

ENSEMBLES = ("nvt", "nve", "npt", "npt-i", "npt-iso", "npt-a", "npt-aniso", "npt-t", "npt-tri")

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


@register
class LammpsEngine(Engine):
    """LAMMPS with deepmd-kit's ``pair_style deepmd`` (the DeePMD plugin of the ``lammps`` package)."""

    name = "lammps"
    traj_file = TRAJ_FILE
    traj_fmt = "lammps/dump"
    exit_file = "lammps.exit"
    log_files = (LOG_FILE, OUT_FILE)

    @classmethod
    def args(cls) -> list[Argument]:
        """DP-GEN's model-deviation keys of the LAMMPS engine."""
        return [*super().args(), arg("lmp_neigh_modify_one", int, "LAMMPS neigh_modify one N (most neighbours "
                                     "of one atom)", default=None)]

    @classmethod
    def job_args(cls) -> list[Argument]:
        """Keys of one ``model_devi_jobs`` entry (DP-GEN's): conditions, or a template."""
        return [
            *md_job_args(ENSEMBLES),
            arg("template", dict, "LAMMPS input template: {\"lmp\": path relative to the run folder}", default=None,
                sub_fields=[arg("lmp", str, "the LAMMPS input template"),
                            arg("plm", str, "PLUMED input template (refused: no PLUMED here)", default=None)]),
            arg("rev_mat", dict, "placeholder values of the template: {\"lmp\": {\"V_TEMP\": [300, 600], ...}}; "
                "every combination is a task", default=None,
                sub_fields=[arg("lmp", dict, "placeholder -> list of values", default={}),
                            arg("plm", dict, "PLUMED placeholders (refused: no PLUMED here)", default=None)]),
            arg("sys_rev_mat", dict, "per-system placeholder values: {\"<sys_idx>\": {\"lmp\": {...}}}",
                default=None),
            arg("neidelay", int, "LAMMPS neighbour-list delay", default=None),
        ]

    @classmethod
    def check(cls, param: dict, n_systems: int) -> None:
        """The shared checks (:meth:`.base.Engine.check`); a job's ensemble, pressures,
        ``trj_freq``; ``model_devi_skip`` below ``nsteps`` (a template's smallest ``V_NSTEPS``)."""
        super().check(param, n_systems)
        skip = param["model_devi_skip"]
        for j, job in enumerate(param["model_devi_jobs"]):
            where = f"model_devi_jobs[{j}]"
            if not job["template"]:
                check_md_job(job, where, ENSEMBLES, skip)
                continue
            nsteps = template_nsteps(job)
            require(nsteps is None or skip < nsteps,
                    f"model_devi_skip = {skip} >= {where}.rev_mat V_NSTEPS = {nsteps}: every frame of the job "
                    f"would be skipped and nothing selected; lower model_devi_skip (MD steps) below {nsteps}")

    @classmethod
    def check_files(cls, param: dict, base_dir: Path) -> None:
        """The LAMMPS input templates of the template jobs (:func:`.template.check_templates`)."""
        check_templates(param, base_dir)

    def task_inputs(self, job: dict, iteration: int, models: list[str], sys_idx: int, first: int,
                    base_dir: Path) -> list[tuple[dict[str, str], dict]]:
        """``input.lammps`` of each task: generated per temperature (K) and pressure (bar,
        ``npt*`` only), or revised from the template per combination of its placeholders'
        values (``job.json`` holds them, as DP-GEN's)."""
        p = self.param
        rel = relative_keywords(p)
        if uses_template(job):
            text = (base_dir / job["template"]["lmp"]).read_text()
            keys, combos = revisions(job, sys_idx)
            return [({"input.lammps": revise(text, models=models, trj_freq=job["trj_freq"], keys=keys, values=combo,
                                             neigh_one=p["lmp_neigh_modify_one"], **rel)},
                     {"template": job["template"]["lmp"], "trj_freq": job["trj_freq"], **dict(zip(keys, combo))})
                    for combo in combos]
        out = []
        for k, (temp, press) in enumerate(md_conditions(job)):
            text = lammps_input(
                models=models, masses=type_masses(self.param), temp=temp, press=press, ensemble=job["ensemble"],
                nsteps=job["nsteps"], trj_freq=job["trj_freq"], dt=job["dt"] or p["model_devi_dt"],
                seed=velocity_seed(iteration, sys_idx, first + k, p["random_seed"]),
                tau_t=job["taut"], tau_p=job["taup"],
                neidelay=job["neidelay"], neigh_one=p["lmp_neigh_modify_one"], nopbc=p["model_devi_nopbc"], **rel)
            out.append(({"input.lammps": text}, {"temp": temp, "press": press, "ensemble": job["ensemble"],
                                                  "nsteps": job["nsteps"], "trj_freq": job["trj_freq"]}))
        return out

    def write_conf(self, system: dpdata.System, task: Path) -> None:
        """``conf.lmp`` (LAMMPS data file, element order of ``type_map``)."""
        system.to("lammps/lmp", str(task / "conf.lmp"))

    def program(self, conf: dict) -> str:
        """``machine.json``'s command, else the ``lmp`` of this environment.  This environment's
        ``lmp`` script on a stage that runs here (:func:`..dispatch.local_python`) becomes the
        binary it starts, with the DeePMD plugin's environment (:func:`..lammps_exe.lmp_command`):
        the same LAMMPS, without the script's ~5 s of Python start-up per task."""
        command = conf["command"] or executable("lmp")
        if Path(command).name == "lmp" and local_python(conf, command):
            return lmp_command(deepmd=True)
        return command

    def task_spec(self, task: Path, command: str | None) -> TaskSpec:
        """``lmp -i input.lammps; echo $? > lammps.exit; touch <outputs>``: a LAMMPS error ends the
        task, not the job, so a crash (deterministic with fixed seeds) is not resubmitted, and its
        outputs up to the crash come back from a remote machine as those of a finished task
        (dpdispatcher brings back only finished tasks' files)."""
        outputs = [MODEL_DEVI_FILE, TRAJ_FILE, LOG_FILE]
        return TaskSpec(path=task.name, command=f"{command or executable('lmp')} -i input.lammps; echo $? > "
                        f"{self.exit_file}; touch {' '.join(outputs)}", forward_files=["conf.lmp", "input.lammps"],
                        backward_files=[*outputs, self.exit_file], outlog=OUT_FILE, errlog=ERR_FILE)

    def collect(self, work: Path, failed_jobs: set[str], job: dict) -> dict:
        """Crashed tasks and template tasks are aligned by step (:func:`.outcome.align`)."""
        templated = {t.name for t in work.glob("task.*")} if uses_template(job) else set()
        return check_tasks(work, failed_jobs, self, templated)

    def align(self, task: Path) -> dict:
        """Make frame k of ``traj.dump`` row k of ``model_devi.out`` (:func:`.outcome.align`)."""
        return align(task)

    def rms_force(self, task: Path) -> float:
        """From the ``fx fy fz`` columns of ``traj.dump`` (:func:`dpgen_lite.select.model_devi.dump_rms_force`)."""
        return dump_rms_force(task / TRAJ_FILE)
