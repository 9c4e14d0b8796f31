"""``record.dpgen``: the append-only journal of finished steps, one ``iter step`` line each.

Step numbers follow DP-GEN: 0-2 train (make, run, post), 3-5 model deviation,
6-8 fp.  A step is recorded only after all its outputs are on disk, and the line
is flushed and fsync'ed, so a run killed at any moment resumes at the first
unrecorded step.  A torn last line (killed mid-write) is ignored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

RECORD = "record.dpgen"
STEP_NAMES = (
    "make_train", "run_train", "post_train",
    "make_model_devi", "run_model_devi", "post_model_devi",
    "make_fp", "run_fp", "post_fp",
)
N_STEPS = len(STEP_NAMES)


def read_record(work_dir: Path) -> list[tuple[int, int]]:
    """Return the finished ``(iteration, step)`` pairs in ``work_dir/record.dpgen``, in order.

    Lines that are not two integers (a torn write, an empty line) are skipped.
    """
    path = Path(work_dir) / RECORD
    if not path.is_file():
        return []
    done = []
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) == 2 and all(f.isdigit() for f in fields):
            done.append((int(fields[0]), int(fields[1])))
    return done


def next_step(work_dir: Path) -> tuple[int, int]:
    """The ``(iteration, step)`` to run next: the one after the last recorded, or ``(0, 0)``."""
    done = read_record(work_dir)
    if not done:
        return 0, 0
    it, step = done[-1]
    return (it + 1, 0) if step == N_STEPS - 1 else (it, step + 1)


def append_record(work_dir: Path, iteration: int, step: int) -> None:
    """Durably append ``iteration step`` to ``record.dpgen`` (flush + fsync).

    A torn last line without newline is completed first so the new line stays parseable.
    """
    path = Path(work_dir) / RECORD
    with open(path, "a+b") as fh:
        fh.seek(0, os.SEEK_END)
        if fh.tell() > 0:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                fh.write(b"\n")
        fh.write(f"{iteration} {step}\n".encode())
        fh.flush()
        os.fsync(fh.fileno())


def read_json(path: Path) -> dict | None:
    """The JSON record at ``path``, or None when it is missing or half-written."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace`` (never half-written)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def truncate_record(work_dir: Path, iteration: int, step: int) -> list[tuple[int, int]]:
    """Remove ``(iteration, step)`` and every line after it from ``record.dpgen`` (atomically),
    as a user redoing a step deletes them by hand; return the removed pairs.

    Raises
    ------
    ValueError
        if ``(iteration, step)`` is not recorded.
    """
    done = read_record(work_dir)
    if (iteration, step) not in done:
        raise ValueError(f"iteration {iteration} step {step} is not in {Path(work_dir) / RECORD}: nothing to redo")
    k = done.index((iteration, step))
    atomic_write(Path(work_dir) / RECORD, "".join(f"{i} {s}\n" for i, s in done[:k]))
    return done[k:]
