"""An iteration whose predecessor labelled too little reuses its models (DP-GEN's
``_check_empty_iter`` / ``copy_model``): the rule on hand-made folders, then a real run."""

import json
import logging
import os
import subprocess
from pathlib import Path

import pytest

from dpgen_lite.context import Context
from dpgen_lite.record import read_record
from dpgen_lite.train.stage import (COPIED, empty_iteration, graphs, make_train, post_train, run_train)
from tests.conftest import emt_frames, write_param
from tests.test_loop import DPGEN, tiny
from tests.test_train_keys import CU4, train_param

CHECKPOINT = ("model.ckpt.index", "model.ckpt.meta", "model.ckpt.data-00000-of-00001", "checkpoint")


def fp_data(folder: Path, iteration: int, frames: dict[str, list[int]]) -> None:
    """``iter.<iteration>/02.fp/<name>/sub.K`` deepmd/npy systems of 4-atom frames, ``frames[name][K]`` each."""
    fp = folder / f"iter.{iteration:06d}/02.fp"
    fp.mkdir(parents=True, exist_ok=True)
    for name, counts in frames.items():
        for k, n in enumerate(counts):
            emt_frames(n, seed=k, atoms=CU4).to("deepmd/npy", str(fp / name / f"sub.{k}"))


@pytest.mark.parametrize("frames, fp_task_min, empty", [
    ({}, 0, True),                                      # no data.* at all
    ({"data.000": [2], "data.001": [3]}, 3, False),     # data.001 reaches fp_task_min
    ({"data.000": [2], "data.001": [3]}, 4, True),      # every system under it
    ({"data.000": [2, 2]}, 4, False),                   # the frames of all systems under data.000 count
    ({"data.000": [1]}, 0, False),
])
def test_emptiness_rule(tmp_path, frames, fp_task_min, empty):
    fp_data(tmp_path, 0, frames)
    ctx = Context({"fp_task_min": fp_task_min}, {}, tmp_path)
    assert empty_iteration(ctx, 1) is empty
    assert empty_iteration(ctx, 0) is False  # iteration 0 always trains


def trained_iteration(folder: Path, iteration: int) -> None:
    """``00.train`` of ``iteration`` as a finished training leaves it (fake file contents)."""
    work = folder / f"iter.{iteration:06d}/00.train"
    for ii in range(2):
        (work / f"{ii:03d}").mkdir(parents=True)
        for f in (*CHECKPOINT, "frozen_model.pb", "lcurve.out"):
            (work / f"{ii:03d}" / f).write_text(f"{iteration} {ii} {f}")
        os.symlink(f"{ii:03d}/frozen_model.pb", work / f"graph.{ii:03d}.pb")


def test_reused_models_and_checkpoints_are_found_through_the_links(tmp_path, caplog):
    """Iteration 1 reuses iteration 0's models (links, no training); iteration 2 starts
    from the checkpoints of iteration 1, which are iteration 0's."""
    emt_frames(3, atoms=CU4).to("deepmd/npy", str(tmp_path / "init"))
    trained_iteration(tmp_path, 0)
    fp_data(tmp_path, 0, {"data.000": [1]})
    ctx = Context({**train_param(init_data_sys=["init"], training_init_model=True), "fp_task_min": 2}, {}, tmp_path)
    caplog.set_level(logging.INFO, logger="dpgen_lite")

    make_train(ctx, 1)
    run_train(ctx, 1)  # nothing to submit: no machine is needed
    post_train(ctx, 1)
    work = ctx.path(1, "00.train")
    assert sorted(p.name for p in work.iterdir()) == ["000", "001", COPIED, "graph.000.pb", "graph.001.pb"]
    assert os.readlink(work / "001") == "../../iter.000000/00.train/001"
    assert [g.read_text() for g in graphs(ctx, 1)] == ["0 0 frozen_model.pb", "0 1 frozen_model.pb"]
    assert ("iter.000001/00.train: no training, the models of iter.000000 are reused: iter.000000/02.fp labelled "
            "1 frame(s) in data.000, fewer than fp_task_min = 2 in every system") in caplog.text
    assert "iter.000001/00.train: models reused from iter.000000, nothing to train" in caplog.text
    assert "iter.000001/00.train: models reused from iter.000000, nothing to collect" in caplog.text

    fp_data(tmp_path, 1, {"data.000": [2]})
    make_train(ctx, 2)
    old = ctx.path(2, "00.train") / "001" / "old"
    assert sorted(p.name for p in old.iterdir()) == sorted(CHECKPOINT)
    assert (old / "model.ckpt.index").read_text() == "0 1 model.ckpt.index"
    assert not (ctx.path(2, "00.train") / COPIED).exists()

    # made again after a training at iteration 1 (a redo): a real folder, no marker left
    fp_data(tmp_path, 0, {"data.001": [2]})
    make_train(ctx, 1)
    assert not (work / COPIED).exists() and not (work / "000").is_symlink()
    assert (work / "000/old/model.ckpt.meta").read_text() == "0 0 model.ckpt.meta"


def test_a_run_that_labels_nothing_keeps_its_first_models(cu_run):
    """Trust levels no frame reaches: iteration 0 selects nothing, so iterations 1 and 2
    reuse its models (a chain of links), train nothing, and the run ends normally."""
    folder, param = cu_run
    param = tiny(param, n_jobs=2)
    param.update(model_devi_f_trust_lo=50.0, model_devi_f_trust_hi=100.0, convergence_accurate_ratio=None)
    write_param(folder, param)
    out = subprocess.run([*DPGEN, "run", "param.json"], cwd=folder, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert read_record(folder) == [(i, s) for i in range(2) for s in range(9)] + [(2, s) for s in range(3)]

    first = folder / "iter.000000/00.train"
    for it in (1, 2):
        work = folder / f"iter.{it:06d}/00.train"
        assert sorted(p.name for p in work.iterdir()) == ["000", "001", COPIED, "graph.000.pb", "graph.001.pb"]
        for ii in range(2):
            assert (work / f"{ii:03d}").is_symlink()
            assert os.path.realpath(work / f"{ii:03d}") == str((first / f"{ii:03d}").resolve())
            assert (work / f"graph.{ii:03d}.pb").read_bytes() == (first / f"{ii:03d}/frozen_model.pb").read_bytes()
        assert not list((folder / f"iter.{it - 1:06d}/02.fp").glob("data.*"))
    # trained once: iteration 0's learning curve starts at step 0 once
    for ii in range(2):
        steps = [line.split()[0] for line in (first / f"{ii:03d}/lcurve.out").read_text().splitlines()
                 if not line.startswith("#")]
        assert steps.count("0") == 1
    log = (folder / "dpgen.log").read_text()
    for it in (1, 2):
        assert (f"iter.{it:06d}/00.train: no training, the models of iter.{it - 1:06d} are reused: "
                f"iter.{it - 1:06d}/02.fp labelled nothing, fewer than fp_task_min = 1 in every system") in log
        assert f"iter.{it:06d}/00.train: models reused from iter.{it - 1:06d}, nothing to train" in log
    manifest = json.loads((folder / "models/manifest.json").read_text())
    assert manifest["loop"]["iteration"] == 2
    assert (folder / "models/graph.001.pb").read_bytes() == (first / "001/frozen_model.pb").read_bytes()
