"""The loop on the real programs (deepmd-kit, LAMMPS, EMT labels), killed and resumed."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import dpdata
import numpy as np

from dpgen_lite.dispatch import executable
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


def finished_outputs(folder: Path) -> dict[Path, int]:
    """mtime (ns) of every output a finished task wrote: frozen models, MD deviations, fp labels."""
    files = [*folder.glob("iter.*/00.train/*/frozen_model.pb"), *folder.glob("iter.*/01.model_devi/task.*/model_devi.out"),
             *folder.glob("iter.*/02.fp/task.*/label.extxyz")]
    return {f: f.stat().st_mtime_ns for f in files}


def copy_run(src: Path, dest: Path) -> Path:
    """A fresh run folder with ``src``'s inputs (init data, configurations, param.json)."""
    dest.mkdir()
    for name in ("init", "confs", "param.json"):
        (shutil.copytree if (src / name).is_dir() else shutil.copy)(src / name, dest / name)
    return dest


def test_twenty_sigkills_at_random_moments_change_nothing(cu_run):
    """20 SIGKILLs of ``dpgen run``, kill k inside step k (seeded: 0-3 s into a step that
    waits for jobs, or at its end if it ends sooner; at the start or the end of a step of
    milliseconds), each followed by a restart: the data set and the models are identical,
    frame by frame, to an uninterrupted run's, and no finished task ran again."""
    base, param = cu_run
    write_param(base, tiny(param))
    ref, killed = copy_run(base, base / "ref"), copy_run(base, base / "killed")
    out = subprocess.run([*DPGEN, "run", "param.json"], cwd=ref, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    expected = [(i, s) for i in range(2) for s in range(9)] + [(2, s) for s in range(3)]
    assert read_record(ref) == expected

    rng = np.random.default_rng(20)
    kept: dict[Path, int] = {}
    moments = []
    for k in range(20):
        target = expected[k]
        if target[1] in (1, 4, 7):  # a step that waits for jobs: 0-3 s into it (fp: 0-1 s); its running jobs live on
            when = f"{rng.uniform(0.0, 1.0 if target[1] == 7 else 3.0):.3f}"
        else:  # a step of milliseconds: at its start or at its end
            when = str(rng.choice(["start", "end"]))
        proc = subprocess.run([sys.executable, str(Path(__file__).parent / "kill_driver.py"), "run", "param.json"], cwd=killed,
                              env={**os.environ, "DPGEN_KILL_AT": f"{target[0]} {target[1]} {when}"},
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        assert read_record(killed) == expected[:k]  # killed inside step k, before it was recorded
        moments.append((*target, proc.stderr.splitlines()[-1].removeprefix("killed at ")))
        kept.update(finished_outputs(killed))
    out = subprocess.run([*DPGEN, "run", "param.json"], cwd=killed, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    assert read_record(killed) == expected
    assert sum(m[2] == "inside" for m in moments) >= 3, moments  # mid-step: at least inside the three trainings

    for f, mtime in kept.items():  # a task finished before a kill never ran again
        assert f.stat().st_mtime_ns == mtime, f"{f} was recomputed after a restart"
    for it in range(2):
        a, b = (dpdata.LabeledSystem(str(d / f"iter.{it:06d}/02.fp/data.000"), fmt="deepmd/npy") for d in (ref, killed))
        assert a.get_nframes() == b.get_nframes() == 3
        for key in ("cells", "coords", "energies", "forces"):
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"iteration {it}: {key}")
    for it in range(3):  # the same training, step by step (the frozen graphs embed their folder's path)
        for model in ("000", "001"):
            lcurve = f"iter.{it:06d}/00.train/{model}/lcurve.out"
            assert (ref / lcurve).read_text() == (killed / lcurve).read_text(), lcurve
    log = (killed / "dpgen.log").read_text()
    assert log.count("resuming at") >= 19 and "model_devi_jobs exhausted after 2 iteration(s)" in log
    systems = json.loads((killed / "iter.000002/00.train/000/input.json").read_text())["training"]["training_data"]["systems"]
    assert len(systems) == 3  # init data and both iterations' labels


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
    assert "iteration 0 converged (model_devi_jobs[0]), and later jobs explore 1 new condition(s): going on" in log
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


def test_one_process_training_changes_no_result(cu_run):
    """The speed-ups of issue 15 change no result: the same run with ``machines/local.json`` trains,
    freezes and tests each model in one Python process (``dpgen_lite.train.dp_task``); with its
    ``dp`` behind a shell wrapper (not this environment's console script) every ``dp`` command is its
    own process, as before.  Same seeds, same training curves, model deviations, picked frames and labels,
    bit for bit, and the same model test."""
    base, param = cu_run
    param = tiny(param)
    param["test_data_sys"] = ["init"]
    write_param(base, param)
    fast, slow = copy_run(base, base / "fast"), copy_run(base, base / "slow")
    machine = json.loads((Path(__file__).parents[1] / "machines" / "local.json").read_text())
    for stage, command in (("train", executable("dp")), ("model_devi", executable("lmp")),
                           ("fp", f"{sys.executable} -m dpgen_lite.label.ase_runner")):
        machine[stage]["command"] = command  # this environment's programs, whatever the PATH
        machine[stage]["check_interval"] = 1  # the jobs take seconds: do not wait 5 s for each
    (fast / "machine.json").write_text(json.dumps(machine))
    wrapper = slow / "dp"
    wrapper.write_text(f"#!/bin/sh\nexec {executable('dp')} \"$@\"\n")
    wrapper.chmod(0o755)
    machine["train"]["command"] = str(wrapper)
    (slow / "machine.json").write_text(json.dumps(machine))
    for folder in (fast, slow):
        out = subprocess.run([*DPGEN, "run", "param.json", "machine.json"], cwd=folder, capture_output=True,
                             text=True, timeout=900)
        assert out.returncode == 0, out.stderr
    assert "dpgen_lite.train.dp_task" in (fast / "iter.000000/00.train/submission.json").read_text()
    assert "dp_task" not in (slow / "iter.000000/00.train/submission.json").read_text()
    assert read_record(fast) == read_record(slow)
    for it in range(3):
        for model in ("000", "001"):
            lcurve = f"iter.{it:06d}/00.train/{model}/lcurve.out"
            assert (fast / lcurve).read_text() == (slow / lcurve).read_text(), lcurve
        test = f"iter.{it:06d}/00.train/model_test.json"
        assert json.loads((fast / test).read_text()) == json.loads((slow / test).read_text()), test
    for it in range(2):
        for devi in sorted((fast / f"iter.{it:06d}/01.model_devi").glob("task.*/model_devi.out")):
            other = slow / devi.relative_to(fast)
            np.testing.assert_array_equal(np.loadtxt(devi), np.loadtxt(other), err_msg=str(devi))
        a, b = (dpdata.LabeledSystem(str(d / f"iter.{it:06d}/02.fp/data.000"), fmt="deepmd/npy") for d in (fast, slow))
        assert a.get_nframes() == b.get_nframes() == 3
        for key in ("cells", "coords", "energies", "forces"):
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"iteration {it}: {key}")
