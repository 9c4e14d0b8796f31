"""Step 5: select candidates from the model deviation of an iteration's MD.

Writes, in ``iter.*/02.fp``, DP-GEN's ``candidate.shuffled.%03d.out``,
``rest_accurate.shuffled.%03d.out`` and ``rest_failed.shuffled.%03d.out`` (``task step``
per line) and ``selection.json``: per system the counts and ratios of accurate,
candidate and failed frames, the trust levels applied (the adapted lower levels with
``model_devi_adapt_trust_lo``) and the frames chosen for labelling.

``model_devi.out`` files are read as a stream (:func:`.model_devi.iter_model_devi`): memory
holds one block of rows and the candidates, never a whole trajectory; accurate and failed
frames go straight to their files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from ..context import FP, MODEL_DEVI, Context, log
from ..explore.base import Engine, engine
from ..explore.outcome import failed_tasks
from ..record import atomic_write
from .model_devi import (ACCURATE, CANDIDATE, COL_MAX_F, COL_MAX_V, COL_STEP, FAILED, Adaptive, TopFrames,
                         TrustLevels, classify, number_to_label)
from ..stages import SELECTION, converged, rule, stage_of
from ..train.stage import graphs
from .rules.base import CandidateData, pick_rule
from .trust import adaptive, job_trust, system_trust

#: receives frames as they are classified: ``(ACCURATE or FAILED, task indices, steps)``
Sink = Callable[[int, np.ndarray, np.ndarray], None]


@dataclass
class SystemFrames:
    """The classified frames of one system's MD tasks."""

    #: task folders, relative to the work folder
    tasks: list[str]
    #: numbers of accurate, candidate, failed frames
    counts: np.ndarray
    #: ``(n, 3)`` int64 rows ``task index, step, row`` (row = frame in the dump), in task then row order
    candidates: np.ndarray
    #: the levels applied (the adapted lower levels with ``model_devi_adapt_trust_lo``)
    trust: TrustLevels
    #: per task, the RMS force that divides ε_f (``model_devi_f_avg_relative``), eV/Å
    avg_force: list[float] | None = None

    def entries(self, rows: np.ndarray) -> list[list]:
        """``[task, step, row]`` lists of candidate rows."""
        return [[self.tasks[t], s, r] for t, s, r in np.asarray(rows).reshape(-1, 3).tolist()]


def classify_tasks(md: Engine, task_dirs: list[Path], rel_to: Path, trust: TrustLevels, skip: int, *,
                   adapt: Adaptive | None = None, f_avg_relative: bool = False,
                   sink: Sink | None = None) -> SystemFrames:
    """Classify every frame (step ≥ ``skip``) of one system's tasks' ``model_devi.out``.

    Parameters
    ----------
    md : the engine that ran the tasks (it reads their deviations and trajectories)
    task_dirs : the system's MD task folders, in task order
    rel_to : folder the task names are relative to
    trust : the system's levels, eV/Å and eV (:func:`.model_devi.classify`)
    skip : frames of step < skip are not considered (``model_devi_skip``, in MD steps)
    adapt : DP-GEN's adaptive lower level (:class:`.model_devi.Adaptive`); the lower levels of
        ``trust`` are then not used
    f_avg_relative : divide ε_f by the RMS force of the task's trajectory
    sink : called with the accurate and failed frames as they are found (none are kept)

    The files are read block by block: memory holds one block and the candidates.  With
    ``adapt`` and a percentage (``perc_candi``), a first pass counts the frames.
    """
    names = [str(task.relative_to(rel_to)) for task in task_dirs]
    avg_force = [md.rms_force(task) for task in task_dirs] if f_avg_relative else None
    sink = sink or (lambda kind, task, step: None)

    def blocks():
        for k, task in enumerate(task_dirs):
            row0 = 0
            for block in md.deviations(task):
                rows = np.arange(row0, row0 + len(block), dtype=np.int64)
                row0 += len(block)
                keep = block[:, COL_STEP] >= skip
                if not keep.all():
                    block, rows = block[keep], rows[keep]
                if len(block):
                    devi_f = block[:, COL_MAX_F] if avg_force is None else block[:, COL_MAX_F] / avg_force[k]
                    yield k, block[:, COL_STEP].astype(np.int64), rows, devi_f, block[:, COL_MAX_V]

    if adapt is None:
        counts, candidates = _standard(blocks, trust, sink)
    else:
        counts, candidates, trust = _adaptive(blocks, trust, adapt, sink)
    return SystemFrames(names, counts, candidates, trust, avg_force)


def _standard(blocks, trust: TrustLevels, sink: Sink) -> tuple[np.ndarray, np.ndarray]:
    """DP-GEN's ``_select_by_model_devi_standard``, block by block."""
    counts = np.zeros(3, dtype=np.int64)
    candidates = []
    use_v = trust.v_lo is not None
    for k, steps, rows, devi_f, devi_v in blocks():
        kinds = classify(devi_f, devi_v if use_v else None, trust)
        counts += np.bincount(kinds, minlength=3)
        for kind in (ACCURATE, FAILED):
            mask = kinds == kind
            if mask.any():
                sink(kind, np.full(np.count_nonzero(mask), k, dtype=np.int64), steps[mask])
        mask = kinds == CANDIDATE
        if mask.any():
            candidates.append(np.column_stack([np.full(np.count_nonzero(mask), k, dtype=np.int64),
                                               steps[mask], rows[mask]]))
    return counts, np.concatenate(candidates) if candidates else np.empty((0, 3), dtype=np.int64)


def _adaptive(blocks, trust: TrustLevels, adapt: Adaptive, sink: Sink):
    """DP-GEN's ``_select_by_model_devi_adaptive_trust_low``, in memory O(candidates).

    Failed: ε_f > f_hi or ε_v > v_hi (strictly, as there) or not finite.  Among the other
    frames, the ``n_f`` of largest ε_f and the ``n_v`` of largest ε_v are the candidates
    (:class:`.model_devi.TopFrames`, DP-GEN's tie order); a frame that leaves both sets is
    accurate for good and goes to ``sink`` at once.
    """
    f_hi = trust.f_hi
    v_hi = np.inf if trust.v_hi is None else trust.v_hi
    use_v = trust.v_hi is not None or adapt.uses_virial

    def failed(devi_f, devi_v):
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(devi_f) | (devi_f > f_hi)
            if use_v:
                bad |= ~np.isfinite(devi_v) | (devi_v > v_hi)
        return bad

    if adapt.needs_count:
        n_f, n_v = adapt.numbers(sum(int(np.count_nonzero(~failed(f, v))) for *_, f, v in blocks()))
    else:
        n_f, n_v = adapt.numb_f, adapt.numb_v
    top_f, top_v = TopFrames(n_f), TopFrames(n_v if use_v else 0)
    n_failed = n_ok = 0
    for k, steps, rows, devi_f, devi_v in blocks():
        bad = failed(devi_f, devi_v)
        if bad.any():
            n_failed += int(np.count_nonzero(bad))
            sink(FAILED, np.full(np.count_nonzero(bad), k, dtype=np.int64), steps[bad])
        ok = ~bad
        n = int(np.count_nonzero(ok))
        if not n:
            continue
        n_ok += n
        task, step, row = np.full(n, k, dtype=np.int64), steps[ok], rows[ok]
        rel_task, rel_step, rel_row = top_f.add(devi_f[ok], task, step, row)
        if top_v.n:
            vt, vs, vr = top_v.add(devi_v[ok], task, step, row)
            keep_f = ~np.isin(_ids(rel_task, rel_row), _ids(top_v.task, top_v.row))
            keep_v = ~np.isin(_ids(vt, vr), np.concatenate([_ids(top_f.task, top_f.row), _ids(rel_task, rel_row)]))
            rel_task = np.concatenate([rel_task[keep_f], vt[keep_v]])
            rel_step = np.concatenate([rel_step[keep_f], vs[keep_v]])
        if len(rel_task):
            sink(ACCURATE, rel_task, rel_step)
    both = np.column_stack([np.concatenate([top_f.task, top_v.task]), np.concatenate([top_f.step, top_v.step]),
                            np.concatenate([top_f.row, top_v.row])])
    _, first = np.unique(_ids(both[:, 0], both[:, 2]), return_index=True)
    candidates = both[first]  # unique ids, sorted by (task, row)
    f_lo = top_f.lowest if top_f.lowest is not None else f_hi
    v_lo = top_v.lowest if top_v.lowest is not None else trust.v_hi
    counts = np.array([n_ok - len(candidates), len(candidates), n_failed], dtype=np.int64)
    return counts, candidates, TrustLevels(f_lo, f_hi, v_lo, trust.v_hi)


def _ids(task: np.ndarray, row: np.ndarray) -> np.ndarray:
    """One integer per frame: task index and row."""
    return (np.asarray(task, dtype=np.int64) << 32) | np.asarray(row, dtype=np.int64)


class _Lines:
    """``task step`` lines of a system's accurate and failed frames, written as they come."""

    def __init__(self, files: dict[int, IO[str]], names: list[str]):
        self.files, self.names = files, names

    def __call__(self, kind: int, task: np.ndarray, step: np.ndarray) -> None:
        self.files[kind].write(_lines(self.names, task, step))


def _lines(names: list[str], task: np.ndarray, step: np.ndarray) -> str:
    if not len(task):
        return ""
    if task[0] == task[-1] and (task == task[0]).all():
        prefix = names[int(task[0])] + " "
        return prefix + ("\n" + prefix).join(map(str, step.tolist())) + "\n"
    return "".join(f"{names[t]} {s}\n" for t, s in zip(task.tolist(), step.tolist()))


def candidate_data(md: Engine, task_dirs: list[Path], frames: SystemFrames, model: Callable[[], Path],
                   type_map: list[str], batch: int = 256) -> CandidateData:
    """What a pick rule may ask about the candidates of ``frames`` (:class:`.rules.base.CandidateData`):

    * force deviations, re-read from the deviation files of the candidates' tasks (divided by the
      task's RMS force with ``model_devi_f_avg_relative``, as classified), eV/Å;
    * descriptors: ``DeepPot(model()).eval_descriptor`` of the candidate frames, ``batch`` frames at
      a time, averaged over the atoms of each ``type_map`` element: ``(n, n_types × d)``.
    """
    cand = frames.candidates

    def devi_f() -> np.ndarray:
        out = np.empty(len(cand))
        for k in np.unique(cand[:, 0]):
            col = np.concatenate([b[:, COL_MAX_F] for b in md.deviations(task_dirs[k])] or [np.empty(0)])
            if frames.avg_force is not None:
                col = col / frames.avg_force[k]
            mask = cand[:, 0] == k
            out[mask] = col[cand[mask, 2]]
        return out

    def descriptors() -> np.ndarray:
        from deepmd.infer import DeepPot

        dp = DeepPot(str(model()))
        model_types = dp.get_type_map()
        out = None
        for k in np.unique(cand[:, 0]):
            idx = np.flatnonzero(cand[:, 0] == k)
            traj = md.frames(task_dirs[k], type_map)
            types = np.array([model_types.index(type_map[t]) for t in traj["atom_types"]])
            for s in range(0, len(idx), batch):
                sub = traj.sub_system(cand[idx[s:s + batch], 2])
                n = sub.get_nframes()
                d = dp.eval_descriptor(sub["coords"].reshape(n, -1), sub["cells"].reshape(n, -1), types)
                per_type = [d[:, types == t].mean(axis=1) if (types == t).any() else np.zeros((n, d.shape[-1]))
                            for t in range(len(model_types))]
                block = np.concatenate(per_type, axis=1)
                if out is None:
                    out = np.empty((len(cand), block.shape[1]))
                out[idx[s:s + batch]] = block
        return out

    return CandidateData(devi_f, descriptors)


def select(ctx: Context, iteration: int) -> dict:
    """Classify the frames of every system, pick the candidates to label, write the summary.

    Returns the summary written to ``selection.json``.
    """
    p = ctx.param
    j, job, history = stage_of(ctx, iteration)
    adapt = adaptive(p)
    md = engine(p)
    picker = pick_rule(p)
    work, fp = ctx.path(iteration, MODEL_DEVI), ctx.path(iteration, FP)
    fp.mkdir(parents=True, exist_ok=True)
    levels = job_trust(p, job)
    summary = {"iteration": iteration, "job": j, "repeat": len(history),
               "trust_levels": dict(zip(("f_lo", "f_hi", "v_lo", "v_hi"), levels.values())),
               "adapt_trust_lo": None if adapt is None else vars(adapt),
               "f_avg_relative": bool(p["model_devi_f_avg_relative"]), "systems": {}}
    totals = np.zeros(3, dtype=int)
    for sys_idx in sorted(set(job["sys_idx"])):
        tasks = sorted(work.glob(f"task.{sys_idx:03d}.*"))
        names = [str(task.relative_to(ctx.work_dir)) for task in tasks]
        paths = {ACCURATE: fp / f"rest_accurate.shuffled.{sys_idx:03d}.out",
                 FAILED: fp / f"rest_failed.shuffled.{sys_idx:03d}.out"}
        with open(paths[ACCURATE], "w") as acc, open(paths[FAILED], "w") as fail:
            frames = classify_tasks(md, tasks, ctx.work_dir, system_trust(p, job, sys_idx), p["model_devi_skip"],
                                    adapt=adapt, f_avg_relative=p["model_devi_f_avg_relative"],
                                    sink=_Lines({ACCURATE: acc, FAILED: fail}, names))
        counts = frames.counts
        totals += counts
        n_all = max(int(counts.sum()), 1)
        accurate_ratio = counts[0] / n_all
        n_label = number_to_label(
            len(frames.candidates), accurate_ratio, p["fp_task_max"], p["fp_task_min"],
            p["fp_accurate_threshold"], p["fp_accurate_soft_threshold"])
        data = candidate_data(md, tasks, frames, lambda: graphs(ctx, iteration)[0], p.get("type_map"))
        chosen, rest = picker.pick(frames.candidates, n_label, [p["random_seed"], iteration, sys_idx], data)
        with open(fp / f"candidate.shuffled.{sys_idx:03d}.out", "w") as out:
            for part in (chosen, rest):
                for k in range(0, len(part), 1 << 15):  # a slice at a time: memory O(candidates) arrays only
                    out.write(_lines(names, part[k:k + (1 << 15), 0], part[k:k + (1 << 15), 1]))
        entry = {
            "accurate": int(counts[0]), "candidate": int(counts[1]), "failed": int(counts[2]),
            "accurate_ratio": float(accurate_ratio), "candidate_ratio": float(counts[1] / n_all),
            "failed_ratio": float(counts[2] / n_all), "trust_levels": vars(frames.trust),
            "chosen": frames.entries(chosen),
        }
        if frames.avg_force is not None:
            entry["avg_force"] = dict(zip(names, frames.avg_force))
        summary["systems"][f"{sys_idx:03d}"] = entry
        if adapt is not None:
            log.info("system %03d adapted: f_trust_lo %.4g  v_trust_lo %s", sys_idx, frames.trust.f_lo,
                     "-" if frames.trust.v_lo is None else f"{frames.trust.v_lo:.4g}")
        log.info("system %03d: candidate %d (%.2f %%)  accurate %d (%.2f %%)  failed %d (%.2f %%)  -> %d fp tasks",
                 sys_idx, counts[1], 100 * counts[1] / n_all, counts[0], 100 * accurate_ratio,
                 counts[2], 100 * counts[2] / n_all, len(chosen))
    ratio = float(totals[0] / max(totals.sum(), 1))
    summary["accurate_ratio"] = ratio
    conv = rule(p, job)
    summary.update(convergence=conv, converged=converged(conv, [*history, summary]))
    log.info("iteration %d: accurate ratio %.4f over %d frames; model_devi_jobs[%d] %s", iteration, ratio,
             totals.sum(), j, "has no convergence rule" if conv is None else
             f"{'converged' if summary['converged'] else 'not converged'} ({conv['type']}, iteration "
             f"{len(history) + 1} of at most {job['max_numb_iter']})")
    summary["failed_md_tasks"] = failed_tasks(work, ctx.work_dir)  # crashed MD tasks: their frames before the crash
    atomic_write(fp / SELECTION, json.dumps(summary, indent=1))
    return summary
