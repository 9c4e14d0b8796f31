"""The loop on the real programs (deepmd-kit, LAMMPS, EMT labels), killed and resumed."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import dpdata
import pytest

from dpgen_lite.record import read_record
from tests.conftest import write_param

DPGEN = [sys.executable, "-m", "dpgen_lite.cli"]


def tiny(param: dict, n_jobs: int = 2, temps: list[float] | None = None) -> dict:
    """Shrink the quickstart parameters to seconds per step; job i explores ``temps[i]`` K."""
    temps = temps or [300 + 300 * i for i in range(n_jobs)]
    param = json.loads(json.dumps(param))
    param["numb_models"] = 2
    param["training_reuse_numb_steps"] = 20
    t = param["default_training_param"]
    t["training"].update(numb_steps=30, disp_freq=10, save_freq=10)
    t["learning_rate"]["decay_steps"] = 10
    param["model_devi_jobs"] = [
        {"sys_idx": [0], "temps": [t], "press": [1.0], "nsteps": 60, "trj_freq": 10,
         "ensemble": "nvt" if i == 0 else "npt"} for i, t in enumerate(temps)
    ]
    param.update(fp_task_max=3, fp_task_min=1, convergence_accurate_ratio=None,
                 model_devi_f_trust_lo=0.0, model_devi_f_trust_hi=100.0)
    return param


def start(folder: Path) -> subprocess.Popen:
    return subprocess.Popen([*DPGEN, "run", "param.json"], cwd=folder, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def finished_outputs(folder: Path) -> dict[Path, int]:
    """mtime (ns) of every output a finished task wrote: frozen models and fp labels."""
    files = list(folder.glob("iter.*/00.train/*/frozen_model.pb")) + list(folder.glob("iter.*/02.fp/task.*/label.extxyz"))
    return {f: f.stat().st_mtime_ns for f in files}


def test_loop_survives_sigkill_at_any_moment(cu_run):
    folder, param = cu_run
    write_param(folder, tiny(param))
    kept: dict[Path, int] = {}
    kills = 0
    for delay in (4, 9, 3, 14, 6, 11, 8, 17):
        proc = start(folder)
        time.sleep(delay)
        if proc.poll() is not None:
            break
        os.kill(proc.pid, signal.SIGKILL)  # the driver dies; its queued jobs live on, as on a cluster
        proc.wait()
        kills += 1
        kept.update(finished_outputs(folder))
    proc = start(folder)
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    assert kills >= 4

    # every step recorded once, in order: 2 iterations of 9 steps, then the final training (0-2)
    expected = [(i, s) for i in range(2) for s in range(9)] + [(2, s) for s in range(3)]
    assert read_record(folder) == expected
    # a task finished before a kill was never run again
    for f, mtime in kept.items():
        assert f.stat().st_mtime_ns == mtime, f"{f} was recomputed after a restart"
    # every chosen frame is labelled, none lost
    for it in range(2):
        fp = folder / f"iter.{it:06d}" / "02.fp"
        chosen = sum(len(s["chosen"]) for s in json.loads((fp / "selection.json").read_text())["systems"].values())
        assert chosen == 3
        assert dpdata.LabeledSystem(str(fp / "data.000"), fmt="deepmd/npy").get_nframes() == chosen
        assert json.loads((fp / "fp_report.json").read_text())["failed"] == []
    log = (folder / "dpgen.log").read_text()
    assert "resuming at" in log  # (a kill during Python's start-up leaves no line of its own)
    assert "model_devi_jobs exhausted after 2 iteration(s)" in log
    assert sorted(p.name for p in (folder / "models").iterdir()) == ["graph.000.pb", "graph.001.pb", "manifest.json"]
    manifest = json.loads((folder / "models" / "manifest.json").read_text())
    assert manifest["loop"]["iteration"] == 2 and "exhausted" in manifest["loop"]["stop_reason"]
    # the last models were trained on the init data and both iterations' labels
    systems = json.loads((folder / "iter.000002/00.train/000/input.json").read_text())["training"]["training_data"]["systems"]
    assert len(systems) == 3


def test_converged_run_stops_once_nothing_new_is_left(cu_run):
    """Accurate at 300 K but a 600 K job follows: go on; accurate at 600 K with only a
    repeat of 600 K left: stop, with iteration 1's models as the result."""
    folder, param = cu_run
    param = tiny(param, temps=[300, 600, 600])
    param.update(model_devi_f_trust_lo=50.0, model_devi_f_trust_hi=100.0, convergence_accurate_ratio=0.95)
    write_param(folder, param)
    out = subprocess.run([*DPGEN, "run", "param.json"], cwd=folder, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert read_record(folder)[-1] == (1, 5)
    log = (folder / "dpgen.log").read_text()
    assert "iteration 0 is accurate, but later jobs explore 1 new condition(s): going on" in log
    assert re.search(r"converged at iteration 1: accurate ratio 1\.0000 >= convergence_accurate_ratio 0\.95", log)
    sel = json.loads((folder / "iter.000001/02.fp/selection.json").read_text())
    assert sel["converged"] and sel["systems"]["000"]["accurate"] == 14  # 2 tasks x 7 frames
    assert (folder / "models" / "graph.000.pb").read_bytes() == \
        (folder / "iter.000001/00.train/graph.000.pb").read_bytes()
    # starting it again changes nothing
    again = subprocess.run([*DPGEN, "run", "param.json"], cwd=folder, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and read_record(folder)[-1] == (1, 5)


def run_with_crashing_fp(cu_run, monkeypatch, fp_task_max: int, ratio_failed: float):
    """Run one iteration whose fp calculator crashes on every frame."""
    folder, param = cu_run
    param = tiny(param, n_jobs=1)
    param["fp_params"] = {"calculator": "tests.crashing_calc.CrashingEMT", "kwargs": {"min_volume": 1e9}}
    param.update(fp_task_max=fp_task_max, ratio_failed=ratio_failed)
    write_param(folder, param)
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    out = subprocess.run([*DPGEN, "run", "param.json"], cwd=folder, capture_output=True, text=True, timeout=600)
    return folder, out


def test_failed_fp_tasks_are_excluded_and_reported(cu_run, monkeypatch):
    """Crashed fp tasks (retried, then failed) are reported and left out; the run goes on."""
    folder, out = run_with_crashing_fp(cu_run, monkeypatch, fp_task_max=4, ratio_failed=1.0)
    assert out.returncode == 0, out.stderr
    report = json.loads((folder / "iter.000000/02.fp/fp_report.json").read_text())
    assert report["tasks"] == 4 and report["labelled"] == 0 and len(report["failed"]) == 4
    assert all("label.extxyz" in f["reason"] for f in report["failed"])
    assert "fp task failed: task.000.000000" in (folder / "dpgen.log").read_text()
    assert not list((folder / "iter.000000/02.fp").glob("data.*"))
    assert read_record(folder)[-1] == (1, 2)  # went on: final training done


def test_too_many_failed_fp_tasks_stop_the_run(cu_run, monkeypatch):
    folder, out = run_with_crashing_fp(cu_run, monkeypatch, fp_task_max=2, ratio_failed=0.5)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "2 of 2 fp tasks failed" in out.stderr and "ratio_failed = 0.5" in out.stderr
    assert read_record(folder)[-1] == (0, 7)  # post_fp not recorded: rerun after a fix
