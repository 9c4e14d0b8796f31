"""Steps 3-4: make and run the model-deviation MD of an iteration (``iter.*/01.model_devi``).

One task ``task.<sys_idx %03d>.<counter %06d>`` per (configuration, temperature, pressure)
of the iteration's ``model_devi_jobs`` entry, as in DP-GEN.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np

from ..context import MODEL_DEVI, Context, log
from ..dispatch import TaskSpec, executable, run_tasks
from ..train.stage import graphs
from .configs import read_config, resolve_configs, shuffled
from .lammps import MODEL_DEVI_FILE, TRAJ_FILE, lammps_input

JOB_FILE = "job.json"


def make_model_devi(ctx: Context, iteration: int) -> None:
    """Write the MD task folders (``conf.lmp``, ``input.lammps``, ``job.json``) and link
    the ensemble's models into ``01.model_devi``."""
    p = ctx.param
    job = p["model_devi_jobs"][iteration]
    work = ctx.path(iteration, MODEL_DEVI)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    models = []
    for g in graphs(ctx, iteration):
        os.symlink(os.path.relpath(g.resolve(), work), work / g.name)
        models.append(f"../{g.name}")
    configs = resolve_configs(p, ctx.work_dir)
    pressures = job["press"] if job["ensemble"].startswith("npt") else [None]
    n_tasks = 0
    for sys_idx in job["sys_idx"]:
        counter = 0
        for conf in configs[sys_idx]:
            system = read_config(conf, p)
            for temp in job["temps"]:
                for press in pressures:
                    task = work / f"task.{sys_idx:03d}.{counter:06d}"
                    task.mkdir()
                    if p["shuffle_poscar"]:
                        shuffled(system, [iteration, sys_idx, counter]).to("lammps/lmp", str(task / "conf.lmp"))
                    else:
                        system.to("lammps/lmp", str(task / "conf.lmp"))
                    seed = int(np.random.default_rng([iteration, sys_idx, counter]).integers(1, 2**24))
                    (task / "input.lammps").write_text(lammps_input(
                        models=models, masses=ctx.masses, temp=temp, press=press,
                        ensemble=job["ensemble"], nsteps=job["nsteps"], trj_freq=job["trj_freq"],
                        dt=job["dt"] or p["model_devi_dt"], seed=seed, tau_t=job["taut"], tau_p=job["taup"],
                        neidelay=job["neidelay"], neigh_one=p["lmp_neigh_modify_one"], nopbc=p["model_devi_nopbc"],
                        relative=p["epsilon"] if p["use_relative"] else None,
                        relative_v=p["epsilon_v"] if p["use_relative_v"] else None,
                    ))
                    (task / JOB_FILE).write_text(json.dumps(
                        {"sys_idx": sys_idx, "conf": str(conf), "temp": temp, "press": press,
                         "ensemble": job["ensemble"], "nsteps": job["nsteps"], "trj_freq": job["trj_freq"]}))
                    counter += 1
        n_tasks += counter
    log.info("%s: %d MD tasks (%s)", ctx.rel(iteration, MODEL_DEVI), n_tasks, job["ensemble"])


def run_model_devi(ctx: Context, iteration: int) -> None:
    """Run every MD task through dpdispatcher (``lmp -i input.lammps``)."""
    work = ctx.path(iteration, MODEL_DEVI)
    conf = ctx.stage_conf("model_devi")
    lmp = conf["command"] or executable("lmp")
    tasks = [
        TaskSpec(path=t.name, command=f"{lmp} -i input.lammps",
                 forward_files=["conf.lmp", "input.lammps"],
                 backward_files=[MODEL_DEVI_FILE, TRAJ_FILE, "log.lammps"],
                 outlog="model_devi.log", errlog="model_devi.err")
        for t in sorted(work.glob("task.*"))
    ]
    common = [g.name for g in graphs(ctx, iteration)]
    run_tasks(conf, ctx.work_dir, ctx.rel(iteration, MODEL_DEVI), tasks, forward_common_files=common)
