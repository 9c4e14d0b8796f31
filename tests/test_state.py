"""What a run resumed at (iteration, step) removes, on hand-built run folders: the loop's
steps, the final steps 9-16, models/, and `dpgen redo`'s record edit."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dpgen_lite.context import Context
from dpgen_lite.params import ParamError
from dpgen_lite.record import append_record, read_record, truncate_record
from dpgen_lite.state import check_redo, forget, stale

SELECTION = ["selection.json", "candidate.shuffled.000.out", "rest_accurate.shuffled.000.out",
             "rest_failed.shuffled.000.out"]


def make_run(folder: Path, n_iter: int = 3, final: bool = True) -> Path:
    """A finished run's layout: every stage folder of ``n_iter`` iterations (the last one only
    trained), the final stage's folders and ``models/`` published at the last record line."""
    for it in range(n_iter):
        base = folder / f"iter.{it:06d}"
        (base / "00.train/000").mkdir(parents=True)
        (base / "00.train/000/frozen_model.pb").write_text("model")
        for s in range(3):
            append_record(folder, it, s)
        if it == n_iter - 1:
            break
        (base / "01.model_devi/task.000.000000").mkdir(parents=True)
        (base / "01.model_devi/task.000.000000/traj.dump").write_text("traj")
        fp = base / "02.fp"
        (fp / "task.000.000000").mkdir(parents=True)
        (fp / "data.000").mkdir()
        for name in SELECTION + ["fp_report.json"]:
            (fp / name).write_text("{}")
        for s in range(3, 9):
            append_record(folder, it, s)
    if final:
        for name in ("00.long_train/000", "01.special_fp/task.000.000000", "02.special_train/000", "03.test/loop"):
            (folder / "final" / name).mkdir(parents=True)
        (folder / "final/model_test.json").write_text("{}")
        for s in range(9, 17):
            append_record(folder, n_iter - 1, s)
    (folder / "models").mkdir()
    last = read_record(folder)[-1]
    (folder / "models/manifest.json").write_text(json.dumps({"record": list(last)}))
    return folder


def resumed_at(folder: Path, iteration: int, step: int) -> list:
    """:func:`stale` once the lines from ``(iteration, step)`` on are deleted from the record."""
    truncate_record(folder, iteration, step)
    return stale(folder, iteration, step)


def rel(folder: Path, items) -> list[str]:
    return [str(i.path.relative_to(folder)) + (" (keep)" if i.keep else "") for i in items]


def status(folder: Path) -> str:
    out = subprocess.run([sys.executable, "-m", "dpgen_lite.cli", "status", str(folder)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_a_finished_run_has_nothing_stale(tmp_path):
    folder = make_run(tmp_path)
    assert stale(folder, 2, 17) == []
    assert status(folder) == "next: iteration 2 step 17 (publish (every step done))"
    truncate_record(folder, 2, 12)
    assert status(folder) == "next: iteration 2 step 12 (run_special_fp)"


def test_redo_from_make_fp_keeps_the_selection_and_drops_all_later(tmp_path):
    folder = make_run(tmp_path)
    final = ["final/00.long_train", "final/01.special_fp", "final/02.special_train", "final/03.test",
             "final/model_test.json", "final"]  # each folder first: its jobs are cancelled
    assert rel(folder, resumed_at(folder, 1, 6)) == [
        "iter.000001/02.fp (keep)", "iter.000002/00.train", "iter.000002", *final, "models"]


@pytest.mark.parametrize("at, first", [
    ((1, 7), ["iter.000002/00.train"]),  # resumed inside a run step: its own folder and submission stay
    ((1, 5), ["iter.000001/02.fp"]),
    ((1, 4), ["iter.000001/02.fp"]),
    ((1, 3), ["iter.000001/01.model_devi", "iter.000001/02.fp"]),
    ((0, 0), ["iter.000000/00.train", "iter.000000/01.model_devi", "iter.000000/02.fp"]),
])
def test_redo_from_the_selection_or_earlier_drops_the_stage_folders(tmp_path, at, first):
    folder = make_run(tmp_path)
    found = rel(folder, resumed_at(folder, *at))
    assert found[: len(first)] == first and found[-2:] == ["final", "models"]


@pytest.mark.parametrize("step, expected", [
    (16, ["final/03.test", "final/model_test.json"]),
    (14, ["final/02.special_train", "final/03.test", "final/model_test.json"]),
    (12, ["final/02.special_train", "final/03.test", "final/model_test.json"]),  # run_special_fp: its folder stays
    (9, ["final/00.long_train", "final/01.special_fp", "final/02.special_train", "final/03.test",
         "final/model_test.json"]),
])
def test_redo_of_final_steps_drops_only_the_later_final_folders(tmp_path, step, expected):
    folder = make_run(tmp_path)
    assert rel(folder, resumed_at(folder, 2, step)) == [*expected, "models"]


def test_forget_removes_all_but_the_kept_files(tmp_path):
    folder = make_run(tmp_path)
    ctx = Context({}, {}, folder)
    forget(ctx, resumed_at(folder, 1, 6))
    fp = folder / "iter.000001/02.fp"
    assert sorted(p.name for p in fp.iterdir()) == sorted(SELECTION)
    assert not (folder / "iter.000002").exists() and not (folder / "final").exists()
    assert not (folder / "models").exists()
    assert (folder / "iter.000001/01.model_devi/task.000.000000/traj.dump").is_file()
    assert (folder / "iter.000000/02.fp/data.000").is_dir()


def test_truncate_record_and_redo_command(tmp_path):
    folder = make_run(tmp_path)
    removed = truncate_record(folder, 1, 6)
    assert removed[0] == (1, 6) and removed[-1] == (2, 16)
    assert read_record(folder)[-1] == (1, 5)
    with pytest.raises(ValueError, match="iteration 1 step 7 is not in"):
        truncate_record(folder, 1, 7)
    out = subprocess.run([sys.executable, "-m", "dpgen_lite.cli", "redo", "0", "3", str(folder)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "record.dpgen: removed 12 line(s), '0 3' to '1 5'" in out.stdout
    assert "dpgen run will remove iter.000000/01.model_devi, cancelling its jobs" in out.stdout
    assert "dpgen run redoes iteration 0 from step 3 (make_model_devi)" in out.stdout
    assert read_record(folder)[-1] == (0, 2)


def test_redo_of_the_labelling_needs_the_trajectories(tmp_path):
    folder = make_run(tmp_path)
    (folder / "iter.000001/01.model_devi/task.000.000000/traj.dump").unlink()
    with pytest.raises(ParamError, match=r"trajectories \(traj.dump or traj.traj\) were deleted .* redo from step 3"):
        check_redo(folder, 1, 6)
    check_redo(folder, 1, 3)  # the MD runs again
    out = subprocess.run([sys.executable, "-m", "dpgen_lite.cli", "redo", "1", "5", str(folder)],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "redo from step 3" in out.stderr and "Traceback" not in out.stderr
    assert read_record(folder)[-1] == (2, 16)  # nothing removed
