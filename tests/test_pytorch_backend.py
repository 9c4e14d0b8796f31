"""``train_backend: "pytorch"`` on the real programs: ``dp --pt`` train / freeze / test,
``.pth`` models in LAMMPS's ``pair_style deepmd``, iteration 1 starting from iteration 0's
``model.ckpt.pt``, and a killed task resuming from its own checkpoint.

Needs the PyTorch that deepmd-kit 3.2.0's compiled ops (``libdeepmd_op_pt.so``, the LAMMPS
plugin's ``libdeepmd_backend_pt.so``) are built against, torch 2.11.0:
``pip install "deepmd-kit[torch]==3.2.0"`` (setup.cfg's ``pt`` extra).  Any other torch
(e.g. 2.13.0+cpu) fails to load them (``undefined symbol``).  Without it these tests fail,
they do not skip.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dpdata
import numpy as np

from dpgen_lite.record import read_record
from dpgen_lite.train.deepmd import train_command
from tests.conftest import write_param
from tests.test_loop import tiny

DPGEN = [sys.executable, "-m", "dpgen_lite.cli"]
DP = str(Path(sys.executable).parent / "dp")
INSTALL = 'pip install -e ".[pt]"  (= pip install "deepmd-kit[torch]==3.2.0")'
#: what the pytorch backend needs, checked in a child process (keeps torch out of pytest's)
PT_CHECK = ("import torch; from deepmd.pt.cxx_op import ENABLE_CUSTOMIZED_OP; "
            "assert ENABLE_CUSTOMIZED_OP, 'libdeepmd_op_pt.so not loaded'; print(torch.__version__)")
THREADS = {k: "1" for k in ("OMP_NUM_THREADS", "DP_INTRA_OP_PARALLELISM_THREADS", "DP_INTER_OP_PARALLELISM_THREADS")}


def steps(lcurve: Path) -> list[int]:
    """The training steps written to ``lcurve.out`` (restarts append a new header)."""
    return [int(line.split()[0]) for line in lcurve.read_text().splitlines() if line.strip() and line[0] != "#"]


def test_torch_matches_deepmd_kit_ops():
    out = subprocess.run([sys.executable, "-c", PT_CHECK], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, (f"the pytorch backend is unusable in {sys.prefix}: install it with\n    {INSTALL}\n"
                                 f"{out.stderr[-3000:]}")
    assert out.stdout.split()[-1].startswith("2.11.0"), out.stdout


def test_loop_one_iteration_with_pytorch(cu_run):
    folder, param = cu_run
    param["sys_configs"] = [["000/POSCAR"]]
    write_param(folder, {**tiny(param, n_jobs=1), "train_backend": "pytorch"})
    out = subprocess.run([*DPGEN, "run", "param.json"], cwd=folder, capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, f"(pytorch backend: {INSTALL})\n{out.stderr[-5000:]}"
    # one iteration of 9 steps, then the models trained on its labels (steps 0-2)
    assert read_record(folder) == [(0, s) for s in range(9)] + [(1, s) for s in range(3)]
    assert "model_devi_jobs exhausted after 1 iteration(s)" in (folder / "dpgen.log").read_text()

    # dp --pt train / freeze: .pt checkpoints, frozen_model.pth linked as graph.NNN.pth, no TensorFlow file
    train0 = folder / "iter.000000" / "00.train"
    for ii in range(2):
        task = train0 / f"{ii:03d}"
        assert (task / "model.ckpt.pt").is_file() and steps(task / "lcurve.out")[-1] == 30
        assert (train0 / f"graph.{ii:03d}.pth").resolve() == (task / "frozen_model.pth").resolve()
        assert not list(task.glob("*.pb")) and not list(task.glob("model.ckpt.index"))

    # LAMMPS's DeePMD plugin ran both .pth models on the CPU: a deviation every 10 of 60 steps
    md = next((folder / "iter.000000" / "01.model_devi").glob("task.*"))
    assert "pair_style deepmd ../graph.000.pth ../graph.001.pth" in (md / "input.lammps").read_text()
    devi = np.loadtxt(md / "model_devi.out", ndmin=2)
    assert devi.shape == (7, 7) and np.isfinite(devi).all()
    assert (devi[1:, 4] > 0).all()  # the two models differ once the atoms move
    fp = folder / "iter.000000" / "02.fp"
    assert dpdata.LabeledSystem(str(fp / "data.000"), fmt="deepmd/npy").get_nframes() == 3

    # iteration 1 started from iteration 0's checkpoint: dp --pt train --init-model old/model.ckpt.pt
    task1 = folder / "iter.000001" / "00.train" / "000"
    assert (task1 / "old" / "model.ckpt.pt").is_file()
    assert "old/model.ckpt.pt" in (task1 / "train.err").read_text()
    assert steps(task1 / "lcurve.out")[-1] == 20
    assert sorted(p.name for p in (folder / "models").iterdir()) == ["graph.000.pth", "graph.001.pth", "manifest.json"]
    manifest = json.loads((folder / "models" / "manifest.json").read_text())
    assert manifest["loop"]["models"] == ["graph.000.pth", "graph.001.pth"]

    # dp --pt test evaluates the final models on the labelled frames
    test = subprocess.run([DP, "--pt", "test", "-m", "models/graph.000.pth", "-s", str(fp / "data.000"), "-n", "3"],
                          cwd=folder, capture_output=True, text=True, timeout=600, env={**os.environ, **THREADS})
    assert test.returncode == 0, test.stderr[-3000:]
    assert "Force  RMSE" in test.stdout + test.stderr

    # a task killed after its last checkpoint resumes from it (dp --pt train --restart model.ckpt.pt);
    # a copy beside the task, so that its data paths (../data/sys.*) hold
    again = task1.parent / "restarted"
    shutil.copytree(task1, again, symlinks=True)
    (again / "frozen_model.pth").unlink()
    jdata = json.loads((again / "input.json").read_text())
    jdata["training"]["numb_steps"] = 30
    (again / "input.json").write_text(json.dumps(jdata))
    run = subprocess.run(["bash", "-c", train_command(DP, "pytorch", "old/model.ckpt.pt")], cwd=again,
                         capture_output=True, text=True, timeout=900, env={**os.environ, **THREADS})
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Resuming from model.ckpt.pt" in run.stderr
    assert steps(again / "lcurve.out") == [1, 10, 20, 20, 30]  # 1-20 before the kill, then 20-30 resumed
    assert (again / "frozen_model.pth").is_file()
