"""Steps 6-8: label the chosen candidates (``iter.*/02.fp``) and collect the training data.

Task folders are ``task.<sys_idx %03d>.<counter %06d>``; labelled frames of system
``sys_idx`` are written to ``data.<sys_idx %03d>`` (deepmd/npy).  Failed fp tasks
(crash, unconverged SCF, non-finite numbers) are excluded from the data and listed,
with their reasons, in ``fp_report.json`` and ``dpgen.log``.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import dpdata
import numpy as np

from ..context import FP, MODEL_DEVI, Context, log
from ..dispatch import TaskFailures, TaskSpec, discard, per_core, run_tasks, runs_here
from ..explore.base import engine
from ..record import atomic_write, read_json
from ..stages import read_selection
from .bad_box import is_bad_box, parse_skip_bad_box
from .base import FpStyle, FpTaskFailed, get_style

TASK_FILE = "fp_task.json"
REPORT = "fp_report.json"


class TooManyFailedFpTasks(RuntimeError):
    """The share of failed fp tasks exceeds ``ratio_failed``."""


def fp_style(param: dict, base_dir: Path) -> FpStyle:
    """The fp style named by ``param['fp_style']``."""
    return get_style(param["fp_style"])(param, base_dir)


def write_fp_tasks(style: FpStyle, frames: list[tuple[int, dpdata.System, dict]], work: Path,
                   only: set[str] | None = None) -> None:
    """Write one task folder per frame: ``frames`` are ``(sys_idx, one-frame System, source)``.

    Each folder gets the style's inputs and ``fp_task.json`` (source and forward files).
    With ``only``, just the tasks of those names are (re)written.
    """
    counters: dict[int, int] = defaultdict(int)
    for sys_idx, frame, source in frames:
        task = work / f"task.{sys_idx:03d}.{counters[sys_idx]:06d}"
        counters[sys_idx] += 1
        if only is not None and task.name not in only:
            continue
        shutil.rmtree(task, ignore_errors=True)
        task.mkdir(parents=True)
        files = style.write_inputs(frame, task)
        (task / TASK_FILE).write_text(json.dumps({"sys_idx": sys_idx, "source": source, "forward_files": files}))


def run_fp_tasks(ctx: Context, work_base: str, only: set[str] | None = None) -> None:
    """Run every fp task under ``work_base`` (with ``only``, those of these names) through
    dpdispatcher; a task that fails after every retry is left for :func:`collect_labels`
    to report, not raised.  A style that labels many frames per process
    (:meth:`.base.FpStyle.batch_command`: ``ase``), with its default command on a stage whose
    tasks run in place here (:func:`..dispatch.runs_here`), gets one dpdispatcher task per core,
    each labelling its share of the folders."""
    style = fp_style(ctx.param, ctx.work_dir)
    conf = ctx.stage_conf("fp")
    names = [t.name for t in sorted((ctx.work_dir / work_base).glob("task.*")) if only is None or t.name in only]
    batch = conf["command"] is None and runs_here(conf, in_place=True) and style.batch_command(["."]) is not None
    groups = per_core(names) if batch else [[n] for n in names]
    tasks = []
    for group in groups:
        # a batch task labels its siblings' folders too: only a context that runs tasks in place sees them
        command = (style.batch_command([".", *(f"../{n}" for n in group[1:])]) if batch
                   else conf["command"] or style.default_command())
        meta = json.loads((ctx.work_dir / work_base / group[0] / TASK_FILE).read_text())
        # the stage's user_forward_files / user_backward_files are added by run_tasks
        tasks.append(TaskSpec(path=group[0], command=command, forward_files=meta["forward_files"],
                              backward_files=list(style.output_files), outlog=style.stdout_file, errlog="fp.err"))
    try:
        run_tasks(conf, ctx.work_dir, work_base, tasks, continue_on_failure=True)
    except TaskFailures as err:
        log.warning("%s: %s", work_base, err)


def collect_labels(style: FpStyle, work: Path, ratio_failed: float, holdout_ratio: float = 0.0,
                   seed: int | list[int] = 0) -> dict:
    """Read every task's label, write ``data.%03d`` per system, return and write the report.

    With ``holdout_ratio`` > 0, that share of each system's frames (seeded pick) goes to
    ``valid.%03d`` instead: never trained on, it is the validation set of the final model test.

    Raises
    ------
    TooManyFailedFpTasks
        if failed tasks / all tasks > ``ratio_failed`` (nothing is lost: rerun after a fix).
    """
    labelled: dict[int, list[dpdata.LabeledSystem]] = defaultdict(list)
    failed = []
    tasks = sorted(work.glob("task.*"))
    for task in tasks:
        sys_idx = json.loads((task / TASK_FILE).read_text())["sys_idx"]
        try:
            labelled[sys_idx].append(style.read_label(task))
        except FpTaskFailed as err:
            failed.append({"task": task.name, "reason": str(err)})
    for old in [*work.glob("data.*"), *work.glob("valid.*")]:
        shutil.rmtree(old)
    n_held = 0
    for sys_idx, systems in sorted(labelled.items()):
        held = np.random.default_rng([*np.atleast_1d(seed), sys_idx]).random(len(systems)) < holdout_ratio
        for prefix, frames in (("data", [s for s, h in zip(systems, held) if not h]),
                               ("valid", [s for s, h in zip(systems, held) if h])):
            if frames:
                write_deepmd(frames, work / f"{prefix}.{sys_idx:03d}", style.type_map)
        n_held += int(held.sum())
    report = {
        "tasks": len(tasks), "labelled": sum(len(v) for v in labelled.values()), "held_out": n_held,
        "failed": failed, "failed_ratio": len(failed) / len(tasks) if tasks else 0.0,
    }
    report["stopped"] = report["failed_ratio"] > ratio_failed
    atomic_write(work / REPORT, json.dumps(report, indent=1))
    for f in failed:
        log.warning("fp task failed: %s: %s", f["task"], f["reason"])
    log.info("%s: %d of %d fp tasks labelled, %d failed", work.name, report["labelled"], len(tasks), len(failed))
    if report["stopped"]:
        raise TooManyFailedFpTasks(
            f"{len(failed)} of {len(tasks)} fp tasks failed ({report['failed_ratio']:.0%} > ratio_failed = "
            f"{ratio_failed}); see {work / REPORT} for each reason. Fix the cause and rerun `dpgen run`: "
            "only the failed tasks are made and run again, the labelled ones are kept. To go on without "
            "them instead, raise ratio_failed above the failed share and rerun.")
    return report


def write_deepmd(frames: list[dpdata.LabeledSystem], path: Path, type_map: list[str]) -> None:
    """Write labelled frames as deepmd/npy: one folder for one composition (DP-GEN's
    ``data.%03d``), one sub-folder per composition otherwise."""
    data = dpdata.MultiSystems(*frames, type_map=type_map)
    groups = list(data.systems.values())
    (groups[0] if len(groups) == 1 else data).to("deepmd/npy", str(path))


def candidate_frames(ctx: Context, iteration: int) -> tuple[list[tuple[int, dpdata.System, dict]], int]:
    """The chosen candidates of ``selection.json`` as ``(sys_idx, one-frame System, source)``,
    in task order; with ``fp_skip_bad_box``, those whose box degenerated are left out
    (their number is returned too).

    Raises
    ------
    FileNotFoundError
        if a candidate's MD trajectory was deleted (``model_devi_clean_traj``).
    """
    p = ctx.param
    md = engine(p)
    bad_box = parse_skip_bad_box(p["fp_skip_bad_box"]) if p.get("fp_skip_bad_box") else {}
    frames = []
    skipped = 0
    trajs: dict[str, dpdata.System] = {}
    for sys_key, info in sorted(read_selection(ctx, iteration)["systems"].items()):
        for task, step, row in sorted(info["chosen"]):
            if task not in trajs:
                trajs[task] = md.frames(ctx.work_dir / task, p["type_map"])
            if bad_box and is_bad_box(trajs[task]["cells"][row], bad_box):
                skipped += 1
                log.info("bad box skipped (fp_skip_bad_box = %s): %s step %s", p["fp_skip_bad_box"], task, step)
                continue
            frames.append((int(sys_key), trajs[task].sub_system([row]), {"task": task, "step": step}))
    return frames, skipped


def make_fp(ctx: Context, iteration: int) -> None:
    """Write an fp task for every chosen candidate of ``selection.json`` (:func:`candidate_frames`)."""
    work = ctx.path(iteration, FP)
    for old in work.glob("task.*"):
        shutil.rmtree(old)
    frames, skipped = candidate_frames(ctx, iteration)
    write_fp_tasks(fp_style(ctx.param, ctx.work_dir), frames, work)
    log.info("%s: %d fp tasks (%s)%s", ctx.rel(iteration, FP), len(frames), ctx.param["fp_style"],
             f", {skipped} candidates with a bad box skipped" if skipped else "")


def run_fp(ctx: Context, iteration: int) -> None:
    """Label every fp task of the iteration."""
    run_fp_tasks(ctx, ctx.rel(iteration, FP))


def retry_failed(ctx: Context, work: Path, frames: Callable[[], list[tuple[int, dpdata.System, dict]]]) -> None:
    """After a stop for too many failed fp tasks (``fp_report.json`` says ``stopped``), make
    the failed tasks of ``work`` again with the current settings and run only them.

    Nothing happens when the last collection did not stop, or when ``ratio_failed`` was raised
    above the failed share since (the run goes on without them).  ``frames`` gives the
    frames of every task of ``work`` in task order (as they were made).  The previous
    submission is discarded first (its remote folder would hand back the failures); a
    retry killed midway resumes its own submission (``retry_made`` in the report).
    """
    report = read_json(work / REPORT)
    if not report or not report.get("stopped") or report["failed_ratio"] <= ctx.param["ratio_failed"]:
        return
    names = {f["task"] for f in report["failed"]}
    rel = str(work.relative_to(ctx.work_dir))
    if not report.get("retry_made"):
        discard(ctx.stage_conf("fp"), ctx.work_dir, rel)
        write_fp_tasks(fp_style(ctx.param, ctx.work_dir), frames(), work, only=names)
        atomic_write(work / REPORT, json.dumps({**report, "retry_made": True}, indent=1))
    log.info("%s: running the %d failed fp task(s) again: %s", rel, len(names), ", ".join(sorted(names)))
    run_fp_tasks(ctx, rel, only=names)


def post_fp(ctx: Context, iteration: int) -> None:
    """Collect the labels of the iteration into ``02.fp/data.%03d`` (after a stop for too
    many failures, the failed tasks are first made and run again: :func:`retry_failed`);
    then delete MD trajectories as ``model_devi_clean_traj`` says."""
    final = ctx.param.get("final_training") or {}
    retry_failed(ctx, ctx.path(iteration, FP), lambda: candidate_frames(ctx, iteration)[0])
    collect_labels(fp_style(ctx.param, ctx.work_dir), ctx.path(iteration, FP), ctx.param["ratio_failed"],
                   holdout_ratio=final.get("validation", {}).get("holdout_ratio", 0.0),
                   seed=[ctx.param["random_seed"], iteration])
    clean_trajectories(ctx, iteration)


def clean_trajectories(ctx: Context, iteration: int) -> None:
    """Delete MD trajectories after labelling, as ``model_devi_clean_traj`` says (DP-GEN's meaning):
    ``true``: this iteration's; an int N > 0: every iteration's but the last N ones (this one included)."""
    keep = ctx.param["model_devi_clean_traj"]
    if keep is False:
        return
    last = iteration if keep is True else iteration - int(keep)
    first = iteration if keep is True else 0
    for it in range(first, last + 1):
        for traj in ctx.path(it, MODEL_DEVI).glob(f"task.*/{engine(ctx.param).traj_file}"):
            traj.unlink()
