"""Steps 3-4: make and run the model-deviation MD of an iteration (``iter.*/01.model_devi``).

One task ``task.<sys_idx %03d>.<counter %06d>`` per (configuration, temperature, pressure)
of the iteration's ``model_devi_jobs`` entry, or per (configuration, combination of the
``rev_mat``/``sys_rev_mat`` values) of a template job (:mod:`.template`), as in DP-GEN.  A task
that crashes does not stop the run (:mod:`.outcome`).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from pathlib import Path

import numpy as np

from ..context import MODEL_DEVI, Context, log
from ..dispatch import TaskFailures, TaskSpec, executable, run_tasks
from ..train.stage import graphs
from .configs import read_config, resolve_configs, shuffled
from .lammps import MODEL_DEVI_FILE, TRAJ_FILE, lammps_input
from .outcome import ERR_FILE, EXIT_FILE, LOG_FILE, check_tasks
from .template import revise, revisions, uses_template

JOB_FILE = "job.json"


def relative_keywords(p: dict) -> dict:
    """``relative`` / ``relative_v`` of ``pair_style deepmd``: ε in eV/Å / eV, or None (absolute deviation)."""
    return {"relative": p["epsilon"] if p["use_relative"] else None,
            "relative_v": p["epsilon_v"] if p["use_relative_v"] else None}


def native_inputs(ctx: Context, iteration: int, models: list[str], sys_idx: int, first: int) -> list[tuple[str, dict]]:
    """``(input.lammps, job.json)`` of one configuration's tasks of a job without template: one per
    temperature (K) and pressure (bar, ``npt*`` only), numbered from ``first`` (the velocity seed)."""
    p = ctx.param
    job = p["model_devi_jobs"][iteration]
    pressures = job["press"] if job["ensemble"].startswith("npt") else [None]
    out = []
    for k, (temp, press) in enumerate(itertools.product(job["temps"], pressures)):
        seed = int(np.random.default_rng([iteration, sys_idx, first + k]).integers(1, 2**24))
        text = lammps_input(
            models=models, masses=ctx.masses, temp=temp, press=press,
            ensemble=job["ensemble"], nsteps=job["nsteps"], trj_freq=job["trj_freq"],
            dt=job["dt"] or p["model_devi_dt"], seed=seed, tau_t=job["taut"], tau_p=job["taup"],
            neidelay=job["neidelay"], neigh_one=p["lmp_neigh_modify_one"], nopbc=p["model_devi_nopbc"],
            **relative_keywords(p))
        out.append((text, {"temp": temp, "press": press, "ensemble": job["ensemble"], "nsteps": job["nsteps"],
                           "trj_freq": job["trj_freq"]}))
    return out


def template_inputs(ctx: Context, iteration: int, models: list[str], sys_idx: int,
                    template: str) -> list[tuple[str, dict]]:
    """``(input.lammps, job.json)`` of one configuration's tasks of a template job: one per
    combination of the placeholders' values (job.json holds them, as DP-GEN's)."""
    p = ctx.param
    job = p["model_devi_jobs"][iteration]
    keys, combos = revisions(job, sys_idx)
    return [(revise(template, models=models, trj_freq=job["trj_freq"], keys=keys, values=combo,
                    neigh_one=p["lmp_neigh_modify_one"], **relative_keywords(p)),
             {"template": job["template"]["lmp"], "trj_freq": job["trj_freq"], **dict(zip(keys, combo))})
            for combo in combos]


def link_models(ctx: Context, iteration: int, work: Path) -> list[str]:
    """Link the iteration's frozen models into ``work``; their paths as seen from a task folder."""
    models = []
    for g in graphs(ctx, iteration):
        os.symlink(os.path.relpath(g.resolve(), work), work / g.name)
        models.append(f"../{g.name}")
    return models


def make_model_devi(ctx: Context, iteration: int) -> None:
    """Write the MD task folders (``conf.lmp``, ``input.lammps``, ``job.json``) and link
    the ensemble's models into ``01.model_devi``."""
    p = ctx.param
    job = p["model_devi_jobs"][iteration]
    work = ctx.path(iteration, MODEL_DEVI)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    models = link_models(ctx, iteration, work)
    configs = resolve_configs(p, ctx.work_dir)
    template = (ctx.work_dir / job["template"]["lmp"]).read_text() if uses_template(job) else None
    n_tasks = 0
    for sys_idx in job["sys_idx"]:
        counter = 0
        for conf in configs[sys_idx]:
            system = read_config(conf, p)
            inputs = (template_inputs(ctx, iteration, models, sys_idx, template) if template is not None
                      else native_inputs(ctx, iteration, models, sys_idx, counter))
            for text, meta in inputs:
                task = work / f"task.{sys_idx:03d}.{counter:06d}"
                task.mkdir()
                conf_system = shuffled(system, [iteration, sys_idx, counter]) if p["shuffle_poscar"] else system
                conf_system.to("lammps/lmp", str(task / "conf.lmp"))
                (task / "input.lammps").write_text(text)
                (task / JOB_FILE).write_text(json.dumps({"sys_idx": sys_idx, "conf": str(conf), **meta}))
                counter += 1
        n_tasks += counter
    log.info("%s: %d MD tasks (%s)", ctx.rel(iteration, MODEL_DEVI), n_tasks,
             f"template {job['template']['lmp']}" if template is not None else job["ensemble"])


def run_model_devi(ctx: Context, iteration: int) -> None:
    """Run every MD task through dpdispatcher, then collect their outcome (:func:`.outcome.check_tasks`).

    The command is ``lmp -i input.lammps; echo $? > lammps.exit; touch <outputs>``: a LAMMPS
    error ends the task, not the job, so a crash (deterministic with fixed seeds) is not
    resubmitted, and its outputs up to the crash come back from a remote machine as those of a
    finished task (dpdispatcher brings back only finished tasks' files).  A job that fails for
    another reason (killed, node lost) is retried as usual; if it fails after all retries, its
    tasks are reported as failed too.

    Raises
    ------
    NoMDFrames
        when every task failed before writing a frame.
    """
    work = ctx.path(iteration, MODEL_DEVI)
    conf = ctx.stage_conf("model_devi")
    lmp = conf["command"] or executable("lmp")
    outputs = [MODEL_DEVI_FILE, TRAJ_FILE, LOG_FILE]
    tasks = [
        TaskSpec(path=t.name, command=f"{lmp} -i input.lammps; echo $? > {EXIT_FILE}; touch {' '.join(outputs)}",
                 forward_files=["conf.lmp", "input.lammps"], backward_files=[*outputs, EXIT_FILE],
                 outlog="model_devi.log", errlog=ERR_FILE)
        for t in sorted(work.glob("task.*"))
    ]
    common = [g.name for g in graphs(ctx, iteration)]
    failed: set[str] = set()
    try:
        run_tasks(conf, ctx.work_dir, ctx.rel(iteration, MODEL_DEVI), tasks, forward_common_files=common,
                  continue_on_failure=True)
    except TaskFailures as err:
        log.warning("%s: %s", ctx.rel(iteration, MODEL_DEVI), err)
        failed = {Path(t).name for t in err.failed}
    templated = {t.path for t in tasks} if uses_template(ctx.param["model_devi_jobs"][iteration]) else set()
    check_tasks(work, failed, templated)
