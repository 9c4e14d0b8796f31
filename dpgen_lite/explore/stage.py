"""Steps 3-4: make and run the model-deviation MD of an iteration (``iter.*/01.model_devi``).

One task ``task.<sys_idx %03d>.<counter %06d>`` per (configuration, condition) of the
iteration's ``model_devi_jobs`` entry, as in DP-GEN; the engine (:mod:`.base`) says what a
condition is (a temperature and pressure, a template revision) and writes the inputs.  A task
that crashes does not stop the run (:mod:`.outcome`).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..context import MODEL_DEVI, Context, log
from ..dispatch import TaskFailures, run_tasks
from ..stages import job_of
from ..train.stage import graphs
from .base import JOB_FILE, engine
from .configs import read_config, resolve_configs, shuffled


def link_models(ctx: Context, iteration: int, work: Path) -> list[str]:
    """Link the iteration's frozen models into ``work``; their paths as seen from a task folder."""
    models = []
    for g in graphs(ctx, iteration):
        os.symlink(os.path.relpath(g.resolve(), work), work / g.name)
        models.append(f"../{g.name}")
    return models


def make_model_devi(ctx: Context, iteration: int) -> None:
    """Write the MD task folders (the configuration, the engine's inputs, ``job.json``) and link
    the ensemble's models into ``01.model_devi``."""
    p = ctx.param
    j, job = job_of(ctx, iteration)
    md = engine(p)
    work = ctx.path(iteration, MODEL_DEVI)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    models = link_models(ctx, iteration, work)
    configs = resolve_configs(p, ctx.work_dir)
    n_tasks = 0
    for sys_idx in job["sys_idx"]:
        counter = 0
        for conf in configs[sys_idx]:
            system = read_config(conf, p)
            for files, meta in md.task_inputs(job, iteration, models, sys_idx, counter, ctx.work_dir):
                task = work / f"task.{sys_idx:03d}.{counter:06d}"
                task.mkdir()
                md.write_conf(shuffled(system, [iteration, sys_idx, counter]) if p["shuffle_poscar"] else system,
                              task)
                for name, text in files.items():
                    (task / name).write_text(text)
                (task / JOB_FILE).write_text(json.dumps({"sys_idx": sys_idx, "conf": str(conf), **meta}))
                counter += 1
        n_tasks += counter
    log.info("%s: %d MD tasks (model_devi_jobs[%d], %s, %s)", ctx.rel(iteration, MODEL_DEVI), n_tasks, j, md.name,
             f"template {job['template']['lmp']}" if job.get("template") else job["ensemble"])


def run_model_devi(ctx: Context, iteration: int) -> None:
    """Run every MD task through dpdispatcher (the engine's :meth:`~.base.Engine.task_spec`),
    then collect their outcome (:meth:`~.base.Engine.collect`).

    A program error ends its task, not the job; a job that fails for another reason (killed,
    node lost) is retried as usual, and if it fails after all retries its tasks are reported as
    failed too.

    Raises
    ------
    NoMDFrames
        when every task failed before writing a frame.
    """
    md = engine(ctx.param)
    work = ctx.path(iteration, MODEL_DEVI)
    conf = ctx.stage_conf("model_devi")
    command = md.program(conf)
    tasks = [md.task_spec(t, command) for t in sorted(work.glob("task.*"))]
    common = [g.name for g in graphs(ctx, iteration)]
    failed: set[str] = set()
    try:
        run_tasks(conf, ctx.work_dir, ctx.rel(iteration, MODEL_DEVI), tasks, forward_common_files=common,
                  continue_on_failure=True)
    except TaskFailures as err:
        log.warning("%s: %s", ctx.rel(iteration, MODEL_DEVI), err)
        failed = {Path(t).name for t in err.failed}
    md.collect(work, failed, job_of(ctx, iteration)[1])
