"""Which files each step writes, and forgetting those of steps that are not in ``record.dpgen``.

A run's state is ``record.dpgen``: a step is done when its line is there.  A user redoes
work the DP-GEN way, by deleting the last lines (or with ``dpgen redo ITER STEP``), and
may change ``param.json`` before rerunning.  Whatever an unrecorded step wrote before is
then stale, and :func:`stale` lists it, from the step ``dpgen run`` resumes at on:

* the folders of the later make steps of that iteration (``00.train`` from step 0,
  ``01.model_devi`` from step 3, ``02.fp`` from step 5, and from step 6 all of ``02.fp``
  but the selection of step 5);
* every later iteration's folder;
* the final stage's folders of the later steps (all of ``final/`` from a loop step), and
  ``models/`` unless its manifest was written at the last line of the record.

:func:`forget` removes them, after :func:`dispatch.discard` has cancelled the jobs and
removed the remote folder of the submission recorded in each, so no old result comes back.
At resume after a crash nothing recorded is touched and the running step's own
submission re-attaches: a step's submission lives in the folder of its make step, which
is recorded before it runs.  Labels of an abandoned attempt are never trained on:
training reads only the ``02.fp/data.*`` of iterations redone before it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .context import FP, MODEL_DEVI, TRAIN, Context, log
from .dispatch import discard
from .explore.base import ENGINES
from .params import ParamError
from .record import read_json, read_record
from .select.stage import SELECTION
from .train.final import FINAL, LONG, SPECIAL, SPECIAL_FP, TEST, TEST_REPORT

MODELS, MANIFEST = "models", "manifest.json"
#: the loop's steps (0-8); the final stage's are 9-16
N_LOOP_STEPS = 9
#: step 5's files in ``02.fp``, kept when only make_fp (step 6) is redone
SELECTION_FILES = (SELECTION, "candidate.shuffled.*.out", "rest_accurate.shuffled.*.out", "rest_failed.shuffled.*.out")
#: loop step -> (stage folder it makes, machine.json section of its jobs, files kept)
LOOP_OWNED = {0: (TRAIN, "train", ()), 3: (MODEL_DEVI, "model_devi", ()), 5: (FP, "fp", ()),
              6: (FP, "fp", SELECTION_FILES)}
#: (final step, path under ``final/`` it writes, machine.json section of its jobs)
FINAL_OWNED = ((9, LONG, "train"), (11, SPECIAL_FP, "fp"), (14, SPECIAL, "train"), (16, TEST, "train"),
               (16, TEST_REPORT, ""))


@dataclass(frozen=True)
class Stale:
    """A path written by a step that is not recorded: ``stage`` names the machine.json
    section whose submission may be recorded in it ("" for none); ``keep`` are globs of
    files inside it that stay."""

    path: Path
    stage: str = ""
    keep: tuple[str, ...] = ()


def _iteration(work_dir: Path, iteration: int, first_step: int = 0) -> list[Stale]:
    """The stale folders of ``iteration`` when its steps from ``first_step`` on are not recorded."""
    folder = Path(work_dir) / f"iter.{iteration:06d}"
    out, seen = [], set()
    for step, (name, stage, keep) in LOOP_OWNED.items():  # 02.fp whole (step 5) before 02.fp but the selection (6)
        if step >= first_step and name not in seen and (folder / name).exists():
            out.append(Stale(folder / name, stage, keep))
            seen.add(name)
    return out


def stale(work_dir: Path, iteration: int, step: int) -> list[Stale]:
    """What an earlier attempt left beyond ``(iteration, step)``, the step a run resumes at.

    Returns existing paths only, in the order :func:`forget` removes them.
    """
    work_dir = Path(work_dir)
    out: list[Stale] = []
    if step < N_LOOP_STEPS:
        out += _iteration(work_dir, iteration, step)
    for folder in sorted(work_dir.glob("iter.[0-9][0-9][0-9][0-9][0-9][0-9]")):
        if int(folder.name[5:]) > iteration:
            out += _iteration(work_dir, int(folder.name[5:])) + [Stale(folder)]
    final = work_dir / FINAL
    for s, name, stage in FINAL_OWNED:
        if s >= step and (final / name).exists():
            out.append(Stale(final / name, stage))
    if step < N_LOOP_STEPS and final.exists():
        out.append(Stale(final))
    published = read_json(work_dir / MODELS / MANIFEST) or {}
    if (work_dir / MODELS).exists() and published.get("record") != last_recorded(work_dir):
        out.append(Stale(work_dir / MODELS))
    return out


def last_recorded(work_dir: Path) -> list[int] | None:
    """The last ``[iteration, step]`` of ``record.dpgen`` (None if empty): ``models/`` is
    current when its manifest was written at that line."""
    done = read_record(work_dir)
    return list(done[-1]) if done else None


def forget(ctx: Context, paths: list[Stale]) -> None:
    """Remove ``paths`` (:func:`stale`): first the submission recorded in each (jobs
    cancelled, remote folder removed), then the files, but those matching ``keep``.

    Raises
    ------
    RuntimeError
        from :func:`dispatch.discard` when a recorded submission's machine cannot be reached.
    """
    for item in paths:
        if not item.path.exists():
            continue
        rel = item.path.relative_to(ctx.work_dir)
        if item.stage and item.path.is_dir():
            discard(ctx.stage_conf(item.stage), ctx.work_dir, str(rel))
        kept = {p for pattern in item.keep for p in item.path.glob(pattern)}
        for p in set(item.path.iterdir()) - kept if kept else [item.path]:
            _remove(p)
        log.info("removed %s%s: written by a step that is not in record.dpgen", rel,
                 f" (but {len(kept)} file(s) of the selection)" if kept else "")


def _remove(path: Path) -> None:
    """Remove a file, a link or a folder (not what a link points to)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def check_redo(work_dir: Path, iteration: int, step: int) -> None:
    """Refuse to redo make_fp or the selection of an iteration whose MD trajectories
    were deleted (``model_devi_clean_traj``).

    Raises
    ------
    ParamError
        naming the missing trajectories and the step to redo instead (3, make_model_devi).
    """
    md = Path(work_dir) / f"iter.{iteration:06d}" / MODEL_DEVI
    trajs = sorted({cls.traj_file for cls in ENGINES.load().values()})
    if step in (5, 6) and md.is_dir() and not any(any(md.glob(f"task.*/{t}")) for t in trajs):
        raise ParamError(f"{md}: the MD trajectories ({' or '.join(trajs)}) were deleted (model_devi_clean_traj), "
                         f"so the candidates of iteration {iteration} cannot be labelled again: "
                         f"redo from step 3 (make_model_devi) instead")
