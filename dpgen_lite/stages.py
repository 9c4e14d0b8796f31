"""Exploration stages: which ``model_devi_jobs`` entry an iteration explores, and when a job has converged.

Each ``model_devi_jobs`` entry is a stage (DP-GEN2's model, in DP-GEN's keys).  A stage is
explored in one iteration after another, with new velocity seeds, until its convergence rule
holds or it has taken ``max_numb_iter`` iterations; then the next entry starts.  Without the
stage keys (a DP-GEN file) every entry takes one iteration, as in DP-GEN.

Convergence rules (``convergence`` in the entry; default: ``fixed-levels`` at the top-level
``convergence_accurate_ratio`` when that is set, else none):

* ``fixed-levels``: the accurate ratio of the iteration, over all frames of all its systems,
  reaches ``conv_accuracy`` (DP-GEN2's ``ConvergenceCheckStageScheduler``);
* ``adaptive-lower``: with ``model_devi_adapt_trust_lo``, the adapted lower trust levels
  (every system's force level, and virial level when used) of the last ``n_checked_steps``
  iterations of the stage differ from one iteration to the next by less than
  ``conv_tolerance`` (DP-GEN2's ``ExplorationReportAdaptiveLower.converged``).

A stage that reaches ``max_numb_iter`` without converging stops the run with
``fatal_at_max`` (:class:`StageNotConverged`; raise ``max_numb_iter`` and run again to go on),
else the next stage starts; ``dpgen.log`` says which.  The position of an iteration is derived
from the ``selection.json`` files of the earlier iterations, so it survives any restart.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from dargs import Argument, Variant

from .context import FP, Context
from .params import arg, require

SELECTION = "selection.json"


class StageNotConverged(RuntimeError):
    """A stage with ``fatal_at_max`` took ``max_numb_iter`` iterations without converging."""


def stage_args() -> list[Argument]:
    """The stage keys of a ``model_devi_jobs`` entry."""
    return [
        arg("max_numb_iter", int, "iterations this job may take until it converges (DP-GEN2)", default=1),
        arg("fatal_at_max", bool, "stop the run when the job has not converged after max_numb_iter iterations "
            "(false: go on to the next job)", default=False),
        arg("convergence", dict, "the job's convergence rule (default: fixed-levels at "
            "convergence_accurate_ratio)", default=None, sub_fields=[], sub_variants=[Variant("type", [
                Argument("fixed-levels", dict, [arg("conv_accuracy", float, "accurate ratio to reach, in (0, 1]")]),
                Argument("adaptive-lower", dict, [
                    arg("conv_tolerance", float, "largest change of the adapted lower trust levels between "
                        "consecutive iterations, eV/Å (eV for the virial)", default=0.05),
                    arg("n_checked_steps", int, "iterations whose levels are compared (>= 2)", default=2)]),
            ])]),
    ]


def check_stages(param: dict) -> None:
    """The stage keys of every job.

    Raises
    ------
    ParamError
        naming the key, the value and what is allowed.
    """
    for j, job in enumerate(param["model_devi_jobs"]):
        where = f"model_devi_jobs[{j}]"
        require(job["max_numb_iter"] >= 1, f"{where}.max_numb_iter = {job['max_numb_iter']}: must be >= 1")
        conv = job["convergence"]
        if conv is None:
            require(job["max_numb_iter"] == 1 or param["convergence_accurate_ratio"] is not None,
                    f"{where}.max_numb_iter = {job['max_numb_iter']} without a convergence rule: give "
                    "convergence ({\"type\": \"fixed-levels\", \"conv_accuracy\": 0.9}) or convergence_accurate_ratio")
        elif conv["type"] == "fixed-levels":
            require(0 < conv["conv_accuracy"] <= 1,
                    f"{where}.convergence.conv_accuracy = {conv['conv_accuracy']}: must lie in (0, 1]")
        else:
            require(bool(param.get("model_devi_adapt_trust_lo")),
                    f"{where}.convergence.type = 'adaptive-lower' needs model_devi_adapt_trust_lo = true "
                    "(the lower levels it compares are the adapted ones)")
            require(conv["n_checked_steps"] >= 2,
                    f"{where}.convergence.n_checked_steps = {conv['n_checked_steps']}: must be >= 2")
            require(conv["conv_tolerance"] > 0,
                    f"{where}.convergence.conv_tolerance = {conv['conv_tolerance']}: must be > 0")


def rule(param: dict, job: dict) -> dict | None:
    """The convergence rule of ``job``: its own, or fixed-levels at ``convergence_accurate_ratio``, or None."""
    if job.get("convergence"):
        return job["convergence"]
    ratio = param.get("convergence_accurate_ratio")
    return None if ratio is None else {"type": "fixed-levels", "conv_accuracy": ratio}


def converged(conv: dict | None, history: list[dict]) -> bool:
    """Whether a stage has converged after the iterations whose selections are ``history``
    (the stage's, oldest first, the current one last; see :mod:`.select.stage` for their keys)."""
    if conv is None or not history:
        return False
    if conv["type"] == "fixed-levels":
        return history[-1]["accurate_ratio"] >= conv["conv_accuracy"]
    n = conv["n_checked_steps"]
    if len(history) < n:
        return False
    last = history[-n:]
    for sys_key in last[-1]["systems"]:
        for level in ("f_lo", "v_lo"):
            seq = [sel["systems"].get(sys_key, {}).get("trust_levels", {}).get(level) for sel in last]
            if all(v is None for v in seq):
                continue
            if any(v is None for v in seq) or any(abs(a - b) >= conv["conv_tolerance"] for a, b in zip(seq, seq[1:])):
                return False
    return True


def position(param: dict, iteration: int, selection: Callable[[int], dict]) -> tuple[int, int] | None:
    """``(job index, repetition)`` explored by ``iteration``; None when ``model_devi_jobs`` is exhausted.

    Parameters
    ----------
    selection : the ``selection.json`` of an earlier iteration (read only for jobs of
        ``max_numb_iter`` > 1)
    """
    walked = _walk(param, iteration, selection)
    return None if walked is None else walked[:2]


def _walk(param: dict, iteration: int, selection: Callable[[int], dict]) -> tuple[int, int, list[dict]] | None:
    """:func:`position` with the selections of the stage's earlier iterations, oldest first."""
    jobs = param["model_devi_jobs"]
    j, k, history = 0, 0, []
    for it in range(iteration):
        if j >= len(jobs):
            return None
        if jobs[j]["max_numb_iter"] == 1:  # one iteration whatever its selection (a DP-GEN job)
            j += 1
            continue
        history.append(selection(it))
        k += 1
        if converged(rule(param, jobs[j]), history) or k >= jobs[j]["max_numb_iter"]:
            j, k, history = j + 1, 0, []
    return (j, k, history) if j < len(jobs) else None


def read_selection(ctx: Context, iteration: int) -> dict:
    """The ``selection.json`` of ``iteration``."""
    return json.loads((ctx.path(iteration, FP) / SELECTION).read_text())


def job_of(ctx: Context, iteration: int) -> tuple[int, dict]:
    """``(index, entry)`` of the ``model_devi_jobs`` entry ``iteration`` explores.

    Raises
    ------
    IndexError
        when ``model_devi_jobs`` is exhausted before ``iteration``.
    """
    j, job, _ = stage_of(ctx, iteration)
    return j, job


def stage_of(ctx: Context, iteration: int) -> tuple[int, dict, list[dict]]:
    """:func:`job_of` and the selections of the earlier iterations of the job's stage, oldest
    first, from one reading of the files.

    Raises
    ------
    IndexError
        when ``model_devi_jobs`` is exhausted before ``iteration``.
    """
    walked = _walk(ctx.param, iteration, lambda it: read_selection(ctx, it))
    if walked is None:
        raise IndexError(f"iteration {iteration}: model_devi_jobs is exhausted")
    return walked[0], ctx.param["model_devi_jobs"][walked[0]], walked[2]
