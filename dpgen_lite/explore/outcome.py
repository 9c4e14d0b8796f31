"""What the MD tasks of an iteration left: crashed tasks, the frames they wrote, ``md_report.json``.

Each task runs its program, then writes the program's exit code to the engine's
``exit_file`` (LAMMPS: ``lmp -i input.lammps; echo $? > lammps.exit``): an error ("Lost atoms",
a NaN that ends in one, a bad input line) ends that task only, and it is not run again (with
fixed seeds it would crash again).  Its frames up to the crash are used; for LAMMPS
(:func:`align`), the rows of ``model_devi.out`` whose step has a whole frame in ``traj.dump``
(LAMMPS writes the deviation of a step before it finds the atoms lost and stops,
before dumping that step).  A template job's task is aligned the same way, as a template may
run several ``run`` or ``minimize`` commands (each ``run`` repeats its first step's deviation
row; a ``minimize`` dumps steps with no row): the files are rewritten so that frame k of
``traj.dump`` is row k of ``model_devi.out``, one per step.

``01.model_devi/md_report.json`` lists the failed tasks (reason, exit code, frames kept) and
the realigned ones; the failed ones go to ``dpgen.log`` too.  Every task failing before its
first frame stops the run (:class:`NoMDFrames`): that is a set-up error, not a sampling result.
"""

from __future__ import annotations

import json
import mmap
import os
import re
from array import array
from pathlib import Path

import numpy as np

from ..context import log
from ..record import atomic_write
from .base import ERR_FILE, MODEL_DEVI_FILE

#: the LAMMPS dump of a task (DP-GEN: ``traj/*.lammpstrj``)
TRAJ_FILE = "traj.dump"
REPORT = "md_report.json"
LOG_FILE = "log.lammps"
#: one frame header of a LAMMPS custom dump: step, atom count
DUMP_FRAME = re.compile(rb"ITEM: TIMESTEP[ \t]*\n[ \t]*(\d+)[ \t]*\nITEM: NUMBER OF ATOMS[ \t]*\n[ \t]*(\d+)")
#: one whole row of model_devi.out (a line that starts with the step, ends with a newline)
DEVI_ROW = re.compile(rb"^[ \t]*(\d+)[ \t][^\n]*\n", re.MULTILINE)
#: LAMMPS lines of a dump frame above the atoms
DUMP_HEADER_LINES = 9


class NoMDFrames(RuntimeError):
    """Every MD task of an iteration failed before writing a frame."""


def _scan(path: Path, pattern: re.Pattern) -> np.ndarray:
    """``(n, 2 + groups)`` int64: byte start, byte end and the integer groups of every match of
    ``pattern`` in the file (memory-mapped; memory O(matches))."""
    width = 2 + pattern.groups
    if not path.is_file() or path.stat().st_size == 0:
        return np.empty((0, width), dtype=np.int64)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        flat = array("q")
        for m in pattern.finditer(mm):
            flat.extend((m.start(), m.end(), *map(int, m.groups())))
    return np.frombuffer(flat, dtype=np.int64).reshape(-1, width)


def devi_rows(path: Path) -> np.ndarray:
    """``(n, 3)``: byte start, byte end, step of each whole data row of a ``model_devi.out``."""
    return _scan(path, DEVI_ROW)


def dump_frames(path: Path) -> np.ndarray:
    """``(n, 4)``: byte start, byte end, step, atom count of each whole frame of a LAMMPS custom
    dump; a last frame cut short by a crash is left out."""
    frames = _scan(path, DUMP_FRAME)
    if not len(frames):
        return frames
    frames[:-1, 1] = frames[1:, 0]
    frames[-1, 1] = path.stat().st_size
    start, end, _, natoms = frames[-1]
    with open(path, "rb") as f:
        f.seek(start)
        whole = f.read(end - start).count(b"\n") >= DUMP_HEADER_LINES + natoms
    return frames if whole else frames[:-1]


def aligned(row_steps: np.ndarray, frame_steps: np.ndarray, natoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the rows and frames kept, pairwise of one step: the frames (in order, steps
    increasing) with the first frame's atom count and a row of their step, and that step's first row.

    Returns
    -------
    (rows kept, frames kept), of equal length.
    """
    steps, first = np.unique(row_steps, return_index=True)
    ok = np.isin(frame_steps, steps) & (natoms == (natoms[0] if len(natoms) else 0))
    frames = np.flatnonzero(ok)
    s = frame_steps[frames]
    before = np.maximum.accumulate(np.concatenate([[-1], s[:-1]])) if len(s) else s
    frames = frames[s > before]
    return first[np.searchsorted(steps, frame_steps[frames])], frames


def _rewrite(path: Path, head: int, ranges: np.ndarray) -> None:
    """Replace ``path`` by its first ``head`` bytes followed by the byte ``ranges`` (``(n, 2)``
    start, end; adjacent ones copied as one), through a temporary file renamed over it (a kill
    leaves the old or the new file)."""
    tmp = path.with_name(path.name + ".tmp")
    blocks = [[0, head]]
    for start, end in ranges.tolist():
        if start == blocks[-1][1]:
            blocks[-1][1] = end
        else:
            blocks.append([start, end])
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        for start, end in blocks:
            src.seek(start)
            left = end - start
            while left:
                chunk = src.read(min(left, 1 << 24))
                dst.write(chunk)
                left -= len(chunk)
    os.replace(tmp, path)


def align(task: Path) -> dict:
    """Make frame k of the task's ``traj.dump`` row k of its ``model_devi.out`` (:func:`aligned`),
    rewriting both when they differ; a missing file counts as empty (and is created so).

    Returns
    -------
    ``{"frames": kept, "rows_dropped": n, "frames_dropped": m}``
    """
    devi, traj = task / MODEL_DEVI_FILE, task / TRAJ_FILE
    for f in (devi, traj):
        f.touch()
    rows, frames = devi_rows(devi), dump_frames(traj)
    keep_rows, keep_frames = aligned(rows[:, 2], frames[:, 2], frames[:, 3])
    if not np.array_equal(keep_rows, np.arange(len(rows))) or (len(rows) and rows[-1, 1] != devi.stat().st_size):
        _rewrite(devi, int(rows[0, 0]), rows[keep_rows, :2])
    if not np.array_equal(keep_frames, np.arange(len(frames))) or \
            (frames[-1, 1] if len(frames) else 0) != traj.stat().st_size:
        _rewrite(traj, 0, frames[keep_frames, :2])
    return {"frames": len(keep_rows), "rows_dropped": len(rows) - len(keep_rows),
            "frames_dropped": len(frames) - len(keep_frames)}


def exit_code(task: Path, exit_file: str) -> int | None:
    """The program's exit code the task command wrote to ``exit_file``, None if the file is missing."""
    path = task / exit_file
    text = path.read_text().strip() if path.is_file() else ""
    return int(text) if text.lstrip("-").isdigit() else None


def failure_reason(task: Path, code: int | None, log_files: tuple[str, ...]) -> str:
    """The last ``ERROR`` line of the first of ``log_files`` that has one, else the last line of
    ``model_devi.err``, else the exit code."""
    for name in log_files:
        path = task / name
        if path.is_file():
            errors = [line.strip() for line in _tail(path).splitlines() if line.lstrip().startswith("ERROR")]
            if errors:
                return errors[-1]
    err = [line.strip() for line in _tail(task / ERR_FILE).splitlines() if line.strip()] \
        if (task / ERR_FILE).is_file() else []
    if err:
        return err[-1]
    return f"exit code {code}" if code is not None else "the job failed after all retries"


def _tail(path: Path, size: int = 65536) -> str:
    """The last ``size`` bytes of ``path`` as text."""
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - size))
        return f.read().decode(errors="replace")


def check_tasks(work: Path, failed_jobs: set[str], engine, always_align: set[str] = frozenset()) -> dict:
    """Collect the outcome of every task of ``work`` (``01.model_devi``), write ``md_report.json``.

    Parameters
    ----------
    work : the iteration's ``01.model_devi``
    failed_jobs : names of the tasks whose job failed after all retries (dpdispatcher)
    engine : the :class:`.base.Engine` that ran them (its ``exit_file``, ``log_files`` and ``align``)
    always_align : names of the tasks aligned even when they did not fail (LAMMPS templates, see the module)

    Raises
    ------
    NoMDFrames
        when every task failed before writing a frame.
    """
    tasks = sorted(work.glob("task.*"))
    failed, realigned = [], []
    for task in tasks:
        code = exit_code(task, engine.exit_file)
        crashed = code not in (None, 0) or (code is None and task.name in failed_jobs)
        if not (crashed or task.name in always_align):
            continue
        counts = engine.align(task)
        if crashed:
            failed.append({"task": task.name, "reason": failure_reason(task, code, engine.log_files),
                           "exit_code": code, "frames": counts["frames"]})
        if counts["rows_dropped"] or counts["frames_dropped"]:
            realigned.append({"task": task.name, **counts})
    report = {"tasks": len(tasks), "failed": failed, "realigned": realigned}
    atomic_write(work / REPORT, json.dumps(report, indent=1))
    for f in failed:
        log.warning("MD task failed: %s: %s; its %d frame(s) before the failure are used", f["task"], f["reason"],
                    f["frames"])
    for r in realigned:
        log.info("%s: deviation rows and dump frames aligned by step (%d row(s), %d frame(s) without a partner "
                 "dropped)", r["task"], r["rows_dropped"], r["frames_dropped"])
    if tasks and len(failed) == len(tasks) and not any(f["frames"] for f in failed):
        first = failed[0]
        raise NoMDFrames(
            f"{work}: every MD task failed before its first frame (e.g. {first['task']}: {first['reason']}); see "
            f"{REPORT} and each task's {', '.join(engine.log_files)} and {ERR_FILE}. Fix the cause (the command of "
            "machine.json, the template), then redo this iteration's exploration: `dpgen redo ITER 3` and `dpgen run`")
    return report


def failed_tasks(work: Path, rel_to: Path) -> list[dict]:
    """The failed MD tasks of ``md_report.json`` in ``work``, each ``task`` a path relative to
    ``rel_to`` (as the frames of ``selection.json``); none when the report is missing."""
    path = work / REPORT
    if not path.is_file():
        return []
    rel = os.path.relpath(work, rel_to)
    return [{**f, "task": f"{rel}/{f['task']}"} for f in json.loads(path.read_text())["failed"]]
