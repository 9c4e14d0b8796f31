"""Step 5: select candidates from the model deviation of an iteration's MD.

Writes, in ``iter.*/02.fp``, DP-GEN's ``candidate.shuffled.%03d.out``,
``rest_accurate.shuffled.%03d.out`` and ``rest_failed.shuffled.%03d.out`` (``task step``
per line) and ``selection.json``: per system the counts and ratios of accurate,
candidate and failed frames and the frames chosen for labelling.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..context import FP, MODEL_DEVI, Context, log
from ..explore.lammps import MODEL_DEVI_FILE, job_trust
from ..record import atomic_write
from .model_devi import (ACCURATE, CANDIDATE, COL_MAX_F, COL_MAX_V, COL_STEP, FAILED,
                         TrustLevels, classify, number_to_label, pick, read_model_devi)

SELECTION = "selection.json"


def trust_levels(param: dict, iteration: int) -> TrustLevels:
    """The trust levels of ``iteration``: its ``model_devi_jobs`` entry's own, else the top-level ones."""
    levels = job_trust(param, param["model_devi_jobs"][iteration])
    return TrustLevels(levels["model_devi_f_trust_lo"], levels["model_devi_f_trust_hi"],
                       levels["model_devi_v_trust_lo"], levels["model_devi_v_trust_hi"])


def classify_tasks(task_dirs: list[Path], rel_to: Path, trust: TrustLevels, skip: int) -> dict[int, list]:
    """Classify every frame (step ≥ ``skip``) of the tasks' ``model_devi.out``.

    Returns ``{ACCURATE: [...], CANDIDATE: [...], FAILED: [...]}`` of
    ``[task path relative to rel_to, step, row]`` entries (row = frame index in the dump).
    """
    frames = {ACCURATE: [], CANDIDATE: [], FAILED: []}
    for task in task_dirs:
        devi = read_model_devi(task / MODEL_DEVI_FILE)
        kinds = classify(devi[:, COL_MAX_F], devi[:, COL_MAX_V] if trust.v_lo is not None else None, trust)
        name = str(task.relative_to(rel_to))
        for row in np.flatnonzero(devi[:, COL_STEP] >= skip):
            frames[int(kinds[row])].append([name, int(devi[row, COL_STEP]), int(row)])
    return frames


def select(ctx: Context, iteration: int) -> dict:
    """Classify the frames of every system, pick the candidates to label, write the summary.

    Returns the summary written to ``selection.json``.
    """
    p = ctx.param
    trust = trust_levels(p, iteration)
    md, fp = ctx.path(iteration, MODEL_DEVI), ctx.path(iteration, FP)
    fp.mkdir(parents=True, exist_ok=True)
    summary = {"iteration": iteration, "trust_levels": vars(trust), "systems": {}}
    totals = np.zeros(3, dtype=int)
    for sys_idx in sorted(set(p["model_devi_jobs"][iteration]["sys_idx"])):
        tasks = sorted(md.glob(f"task.{sys_idx:03d}.*"))
        frames = classify_tasks(tasks, ctx.work_dir, trust, p["model_devi_skip"])
        counts = np.array([len(frames[k]) for k in (ACCURATE, CANDIDATE, FAILED)])
        totals += counts
        n_all = max(int(counts.sum()), 1)
        accurate_ratio = counts[0] / n_all
        n_label = number_to_label(
            len(frames[CANDIDATE]), accurate_ratio, p["fp_task_max"], p["fp_task_min"],
            p["fp_accurate_threshold"], p["fp_accurate_soft_threshold"])
        chosen, rest = pick(frames[CANDIDATE], n_label, seed=[p["random_seed"], iteration, sys_idx])
        for prefix, entries in (("candidate", chosen + rest), ("rest_accurate", frames[ACCURATE]),
                                ("rest_failed", frames[FAILED])):
            (fp / f"{prefix}.shuffled.{sys_idx:03d}.out").write_text(
                "".join(f"{name} {step}\n" for name, step, _ in entries))
        summary["systems"][f"{sys_idx:03d}"] = {
            "accurate": int(counts[0]), "candidate": int(counts[1]), "failed": int(counts[2]),
            "accurate_ratio": float(accurate_ratio), "candidate_ratio": float(counts[1] / n_all),
            "failed_ratio": float(counts[2] / n_all), "chosen": chosen,
        }
        log.info("system %03d: candidate %d (%.2f %%)  accurate %d (%.2f %%)  failed %d (%.2f %%)  -> %d fp tasks",
                 sys_idx, counts[1], 100 * counts[1] / n_all, counts[0], 100 * accurate_ratio,
                 counts[2], 100 * counts[2] / n_all, len(chosen))
    ratio = float(totals[0] / max(totals.sum(), 1))
    threshold = p["convergence_accurate_ratio"]
    summary.update(accurate_ratio=ratio, converged=threshold is not None and ratio >= threshold)
    log.info("iteration %d: accurate ratio %.4f over %d frames%s", iteration, ratio, totals.sum(),
             f" (convergence at {threshold})" if threshold is not None else "")
    atomic_write(fp / SELECTION, json.dumps(summary, indent=1))
    return summary


def load_selection(ctx: Context, iteration: int) -> dict:
    """The ``selection.json`` written by :func:`select` for ``iteration``."""
    return json.loads((ctx.path(iteration, FP) / SELECTION).read_text())
