"""After the loop: long training, compression, specialisation, model test; resumable."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import dpdata
import pytest

from dpgen_lite.record import read_record
from dpgen_lite.train.model_test import rmse_from_detail
from tests.conftest import write_param
from tests.test_loop import DPGEN, tiny


def with_final(param: dict, folder: Path, numb_steps: int = 60, special: bool = True) -> dict:
    param = tiny(param, n_jobs=1)
    param.update(fp_task_max=6)
    param["final_training"] = {
        "numb_steps": numb_steps,
        "learning_rate": {"decay_steps": 20},
        "special_sets": [{"generator": {"type": "elastic", "structure": "confs/000/POSCAR",
                                        "norm_deform": 0.01, "shear_deform": 0.01}, "weight": 4.0}] if special else [],
        "special_numb_steps": 30,
        "validation": {"holdout_ratio": 0.5},
    }
    return param


def test_final_pipeline(cu_run):
    folder, param = cu_run
    write_param(folder, with_final(param, folder))
    out = subprocess.run([*DPGEN, "run", "param.json"], cwd=folder, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    assert read_record(folder)[-8:] == [(1, s) for s in range(9, 17)]

    # held-out frames: in valid.000, never in any training input
    fp = folder / "iter.000000/02.fp"
    report = json.loads((fp / "fp_report.json").read_text())
    n_valid = dpdata.LabeledSystem(str(fp / "valid.000"), fmt="deepmd/npy").get_nframes()
    assert report["held_out"] == n_valid > 0
    assert dpdata.LabeledSystem(str(fp / "data.000"), fmt="deepmd/npy").get_nframes() == report["labelled"] - n_valid
    for inp in folder.glob("**/input.json"):
        systems = json.loads(inp.read_text())["training"]["training_data"]["systems"]
        assert not any("valid" in os.path.realpath(inp.parent / s) for s in systems)

    # long training: virial on by default, every label, its own numb_steps
    long_inp = json.loads((folder / "final/00.long_train/000/input.json").read_text())
    assert long_inp["loss"]["limit_pref_v"] == 1.0 and long_inp["training"]["numb_steps"] == 60
    assert len(long_inp["training"]["training_data"]["systems"]) == 2  # init + iteration 0

    # special set: 24 elastic deformations labelled, weighted 4x per frame through auto_prob
    special = dpdata.LabeledSystem(str(folder / "final/01.special_fp/data.000"), fmt="deepmd/npy")
    assert special.get_nframes() == 24
    sp_inp = json.loads((folder / "final/02.special_train/000/input.json").read_text())
    systems = sp_inp["training"]["training_data"]["systems"]
    assert len(systems) == 3
    n_regular = 6 + report["labelled"] - n_valid
    blocks = sp_inp["training"]["training_data"]["auto_prob"].split(";")[1:]
    p_regular, p_special = (float(b.split(":")[2]) for b in blocks)
    assert p_special / p_regular == pytest.approx(4.0 * 24 / n_regular, rel=1e-4)
    assert os.path.realpath(folder / "final/02.special_train/data" / Path(systems[2]).name) == \
        str((folder / "final/01.special_fp/data.000").resolve())

    # models, compressed ones included, tested on the held-out frames
    test = json.loads((folder / "final/model_test.json").read_text())
    assert set(test["models"]) == {"loop", "long_000", "long_000_compressed", "special_000", "special_000_compressed"}
    for r in test["models"].values():
        assert r["n_frames"] == n_valid and r["force_rmse_meV_per_A"] > 0 and r["virial_rmse_meV_per_atom"] > 0
    # compression changes the model little
    assert test["models"]["long_000_compressed"]["force_rmse_meV_per_A"] == pytest.approx(
        test["models"]["long_000"]["force_rmse_meV_per_A"], rel=0.05)
    manifest = json.loads((folder / "models/manifest.json").read_text())
    assert manifest["final"]["special_000"]["numb_steps"] == 30
    assert (folder / "models" / manifest["final"]["long_000_compressed"]["file"]).is_file()


def _pids_under(folder: Path, pattern: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                cwd = os.readlink(proc / "cwd")
            except OSError:
                continue
            if pattern in cmd and cwd.startswith(str(folder)):
                pids.append(int(proc.name))
    return pids


def test_killed_long_training_resumes_from_checkpoint(cu_run):
    folder, param = cu_run
    param = with_final(param, folder, numb_steps=400, special=False)
    param["default_training_param"]["training"].update(save_freq=50, disp_freq=50)
    write_param(folder, param)
    task = folder / "final/00.long_train/000"
    proc = subprocess.Popen([*DPGEN, "run", "param.json"], cwd=folder, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not (task / "model.ckpt-150.index").is_file():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.5)
    # the node dies: driver and training job together
    for pid in [proc.pid, *_pids_under(task, "train")]:
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    assert not (task / "frozen_model.pb").exists()
    out = subprocess.run([*DPGEN, "run", "param.json"], cwd=folder, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    steps = [int(line.split()[0]) for line in (task / "lcurve.out").read_text().splitlines() if line[:1] != "#"]
    assert steps.count(0) == 1 and steps[-1] == 400, steps  # trained on from >= 150, not from zero
    assert "--restart" in (task / "train.log").read_text() or "restart" in (task / "train.err").read_text().lower()


def test_rmse_from_detail(tmp_path):
    (tmp_path / "d.e.out").write_text("# data pred\n-10.0 -10.2\n-20.0 -19.6\n")
    (tmp_path / "d.f.out").write_text("0 0 0 0.1 0 0\n1 1 1 1 1 1.3\n")
    r = rmse_from_detail(tmp_path / "d", __import__("numpy").array([2.0, 4.0]))
    assert r["energy_rmse_meV_per_atom"] == pytest.approx(100.0)
    assert r["force_rmse_meV_per_A"] == pytest.approx(1e3 * ((0.01 + 0.09) / 6) ** 0.5)
    assert r["virial_rmse_meV_per_atom"] is None and r["n_frames"] == 2
