"""The concurrent-learning loop: train -> explore -> select -> label, resumable from ``record.dpgen``.

Steps (DP-GEN's numbering): 0 make_train, 1 run_train, 2 post_train, 3 make_model_devi,
4 run_model_devi, 5 post_model_devi (selection), 6 make_fp, 7 run_fp, 8 post_fp.
The loop stops

* when ``model_devi_jobs`` is exhausted: the models of the last iteration are trained on
  every label (steps 0-2) and exploration has nothing left to do;
* when an iteration's accurate ratio over all systems reaches
  ``convergence_accurate_ratio`` and no later job explores a condition (system,
  ensemble, temperature, pressure) not explored yet: that iteration's models are the
  result.  An accurate iteration followed by hotter or new jobs goes on to them.

With a ``final_training`` section, steps 9-16 of :mod:`.train.final` follow (long
training, compression, specialisation, model test), recorded under the loop's last
iteration.  At the end the result lands in ``models/`` with ``manifest.json``, and
``dpgen.log`` says why the loop ended.

A run resumes at the first step not in ``record.dpgen``; what steps that are not recorded
wrote before (a crash, or lines deleted by hand or by ``dpgen redo`` to redo them with new
settings) is removed first (:mod:`.state`), so the rerun gives what a run with the new
settings from that step on would have given.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable

from .context import Context, log
from .explore.stage import make_model_devi, run_model_devi
from .explore.template import conditions
from .label.stage import make_fp, post_fp, run_fp
from .record import STEP_NAMES, append_record, atomic_write, next_step, read_record
from .state import MANIFEST, MODELS, check_redo, forget, last_recorded, stale
from .select.stage import select
from .stages import StageNotConverged, job_of, position, read_selection
from .train.final import FINAL, FINAL_STEP_NAMES, FINAL_STEPS, TEST_REPORT, final_models
from .train.stage import graphs, make_train, post_train, run_train

STEPS: tuple[Callable[[Context, int], object], ...] = (
    make_train, run_train, post_train,
    make_model_devi, run_model_devi, select,
    make_fp, run_fp, post_fp,
)
FIRST_FINAL_STEP = len(STEPS)
ALL_STEP_NAMES = STEP_NAMES + FINAL_STEP_NAMES


def stop_reason(ctx: Context, iteration: int, step: int) -> str | None:
    """Why the loop ends before running ``(iteration, step)``, or None to go on.

    Raises
    ------
    StageNotConverged
        before make_fp of the last iteration a stage with ``fatal_at_max`` may take, unconverged.
    """
    jobs = ctx.param["model_devi_jobs"]
    if step == 3 and position(ctx.param, iteration, lambda it: read_selection(ctx, it)) is None:
        return f"model_devi_jobs exhausted after {iteration} iteration(s)"
    if step != 6:
        return None
    sel = read_selection(ctx, iteration)
    j, job = job_of(ctx, iteration)
    if not sel["converged"]:
        if sel["repeat"] + 1 < job["max_numb_iter"] or job["max_numb_iter"] == 1:
            return None
        if job["fatal_at_max"]:
            raise StageNotConverged(
                f"model_devi_jobs[{j}] has not converged in max_numb_iter = {job['max_numb_iter']} iterations "
                f"(accurate ratio {sel['accurate_ratio']:.4f} at iteration {iteration}; rule {sel['convergence']}); "
                "raise max_numb_iter (or set fatal_at_max false) and run again to go on")
        log.info("model_devi_jobs[%d] has not converged in max_numb_iter = %d iterations: going on to the next "
                 "job (fatal_at_max is false)", j, job["max_numb_iter"])
        return None
    explored = set().union(*(conditions(job) for job in jobs[: j + 1]))
    new = set().union(set(), *(conditions(job) for job in jobs[j + 1:])) - explored
    if new:
        log.info("iteration %d converged (model_devi_jobs[%d]), and later jobs explore %d new condition(s): going "
                 "on", iteration, j, len(new))
        return None
    conv = sel["convergence"]
    if conv["type"] == "fixed-levels":
        given = "convergence_accurate_ratio" if job["convergence"] is None else f"model_devi_jobs[{j}] conv_accuracy"
        return f"converged at iteration {iteration}: accurate ratio {sel['accurate_ratio']:.4f} >= {given} " \
               f"{conv['conv_accuracy']}"
    return (f"converged at iteration {iteration}: the adapted lower trust levels changed by less than "
            f"{conv['conv_tolerance']} over the last {conv['n_checked_steps']} iterations of model_devi_jobs[{j}]")


def publish(ctx: Context, iteration: int, reason: str) -> None:
    """Copy the result into ``models/`` with ``manifest.json`` (which data, which steps, which RMSE)."""
    out = ctx.work_dir / MODELS
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    manifest = {"record": last_recorded(ctx.work_dir),
                "loop": {"iteration": iteration, "stop_reason": reason,
                         "models": [g.name for g in graphs(ctx, iteration)]}, "final": {}}
    for g in graphs(ctx, iteration):
        shutil.copy(g.resolve(), out / g.name)
    if ctx.param["final_training"] is not None:
        tests = json.loads((ctx.work_dir / FINAL / TEST_REPORT).read_text())["models"]
        for name, path in final_models(ctx).items():
            shutil.copy(path, out / f"{name}{path.suffix}")
            jdata = json.loads((path.parent / "input.json").read_text())
            manifest["final"][name] = {
                "file": f"{name}{path.suffix}", "numb_steps": jdata["training"]["numb_steps"],
                "data": [os.path.relpath((path.parent / s).resolve(), ctx.work_dir.resolve())
                         for s in jdata["training"]["training_data"]["systems"]],
                "test": {k: v for k, v in tests[name].items() if k != "file"},
            }
        manifest["loop"]["test"] = {k: v for k, v in tests["loop"].items() if k != "file"}
    atomic_write(out / MANIFEST, json.dumps(manifest, indent=1))
    log.info("finished: %s; models in %s/ (manifest.json)", reason, MODELS)


def run_loop(ctx: Context) -> str:
    """Run (or resume) the loop and the final steps until done; return why the loop ended."""
    iteration, step = next_step(ctx.work_dir)
    if (iteration, step) != (0, 0):
        log.info("resuming at iteration %d step %d (%s)", iteration, step, ALL_STEP_NAMES[step]
                 if step < len(ALL_STEP_NAMES) else "publish")
    check_redo(ctx.work_dir, iteration, step)
    forget(ctx, stale(ctx.work_dir, iteration, step))
    while step < FIRST_FINAL_STEP:
        reason = stop_reason(ctx, iteration, step)
        if reason is not None:
            step = FIRST_FINAL_STEP
            break
        log.info("iter %06d step %d: %s", iteration, step, STEP_NAMES[step])
        STEPS[step](ctx, iteration)
        append_record(ctx.work_dir, iteration, step)
        iteration, step = (iteration + 1, 0) if step == len(STEPS) - 1 else (iteration, step + 1)
    reason = loop_end_reason(ctx, iteration)
    log.info("loop ended: %s", reason)
    if ctx.param["final_training"] is not None:
        for k in range(step - FIRST_FINAL_STEP, len(FINAL_STEPS)):
            log.info("iter %06d step %d: %s", iteration, FIRST_FINAL_STEP + k, FINAL_STEP_NAMES[k])
            FINAL_STEPS[k](ctx, iteration)
            append_record(ctx.work_dir, iteration, FIRST_FINAL_STEP + k)
    publish(ctx, iteration, reason)
    return reason


def next_action(ctx: Context) -> tuple[int, int, str | None]:
    """Where ``dpgen run`` goes on: ``(iteration, step, why the loop ended or None)``; a loop that
    ends before its next step goes on with the first final step (``final_training``) or publishes.

    Raises
    ------
    StageNotConverged
        when the run would stop there.
    """
    iteration, step = next_step(ctx.work_dir)
    if step >= FIRST_FINAL_STEP:
        return iteration, step, None
    reason = stop_reason(ctx, iteration, step)
    if reason is None:
        return iteration, step, None
    return iteration, FIRST_FINAL_STEP if ctx.param["final_training"] is not None else len(ALL_STEP_NAMES), reason


def loop_end_reason(ctx: Context, iteration: int) -> str:
    """Why the loop ended at ``iteration`` (re-derived from the files, so also after a restart)."""
    done = {s for i, s in read_record(ctx.work_dir) if i == iteration}
    step = 6 if 5 in done else 3
    return stop_reason(ctx, iteration, step) or f"stopped at iteration {iteration}"
