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

Either way the final models are copied to ``models/`` and ``dpgen.log`` says why the run ended.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable

from .context import Context, log
from .explore.stage import make_model_devi, run_model_devi
from .label.stage import make_fp, post_fp, run_fp
from .record import STEP_NAMES, append_record, next_step
from .select.stage import load_selection, select
from .train.stage import graphs, make_train, post_train, run_train

STEPS: tuple[Callable[[Context, int], object], ...] = (
    make_train, run_train, post_train,
    make_model_devi, run_model_devi, select,
    make_fp, run_fp, post_fp,
)
FINAL_MODELS = "models"


def _finish(ctx: Context, iteration: int, reason: str) -> str:
    out = ctx.work_dir / FINAL_MODELS
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    for g in graphs(ctx, iteration):
        shutil.copy(g.resolve(), out / g.name)
    log.info("finished: %s; final models of %s copied to %s/", reason, ctx.iter_name(iteration), FINAL_MODELS)
    return reason


def conditions(job: dict) -> set[tuple]:
    """The (sys_idx, ensemble, T, P) combinations a ``model_devi_jobs`` entry explores."""
    press = job["press"] if job["ensemble"].startswith("npt") else [None]
    return {(s, job["ensemble"], t, p) for s in job["sys_idx"] for t in job["temps"] for p in press}


def stop_reason(ctx: Context, iteration: int, step: int) -> str | None:
    """Why the loop ends before running ``(iteration, step)``, or None to go on."""
    jobs = ctx.param["model_devi_jobs"]
    if step == 3 and iteration >= len(jobs):
        return f"model_devi_jobs exhausted after {iteration} iteration(s)"
    if step == 6:
        sel = load_selection(ctx, iteration)
        if not sel["converged"]:
            return None
        explored = set().union(*(conditions(j) for j in jobs[: iteration + 1]))
        new = set().union(set(), *(conditions(j) for j in jobs[iteration + 1:])) - explored
        if new:
            log.info("iteration %d is accurate, but later jobs explore %d new condition(s): going on",
                     iteration, len(new))
            return None
        return (f"converged at iteration {iteration}: accurate ratio {sel['accurate_ratio']:.4f} >= "
                f"convergence_accurate_ratio {ctx.param['convergence_accurate_ratio']}")
    return None


def run_loop(ctx: Context) -> str:
    """Run (or resume) the loop until it stops; return the reason."""
    iteration, step = next_step(ctx.work_dir)
    if (iteration, step) != (0, 0):
        log.info("resuming at iteration %d step %d (%s)", iteration, step, STEP_NAMES[step])
    while True:
        reason = stop_reason(ctx, iteration, step)
        if reason is not None:
            return _finish(ctx, iteration, reason)
        log.info("iter %06d step %d: %s", iteration, step, STEP_NAMES[step])
        STEPS[step](ctx, iteration)
        append_record(ctx.work_dir, iteration, step)
        iteration, step = (iteration + 1, 0) if step == len(STEPS) - 1 else (iteration, step + 1)
