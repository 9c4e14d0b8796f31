"""The ``ase`` exploration engine on the real programs: ASE MD driven by deepmd-kit's ASE
calculator, the ensemble's deviation against LAMMPS's, one quickstart iteration end to end."""

import json
import os
import subprocess
import sys
from pathlib import Path

import ase.build
import dpdata
import numpy as np
import pytest
from ase.io.trajectory import Trajectory

from dpgen_lite.dispatch import executable, library_path_env
from dpgen_lite.explore.lammps import lammps_input
from dpgen_lite.params import ParamError
from dpgen_lite.record import read_record
from dpgen_lite.schema import validate_run
from dpgen_lite.select.model_devi import read_model_devi

from .conftest import THREADS, write_param
from .test_loop import tiny

ROOT = Path(__file__).resolve().parents[1]


def test_step_zero_deviation_equals_lammps(tmp_path, models):
    """The same configuration and models: the ASE runner's first ``model_devi.out`` row (deepmd-kit's
    ``calc_model_devi``) equals LAMMPS ``pair_style deepmd``'s, virial and force columns."""
    atoms = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    atoms.rattle(0.1, seed=3)
    atoms.write(tmp_path / "POSCAR", format="vasp")
    names = [f"../graph.{k:03d}.pb" for k in range(2)]
    for k, model in enumerate(models):
        os.symlink(model, tmp_path / f"graph.{k:03d}.pb")
    for engine in ("ase", "lmp"):
        (tmp_path / engine).mkdir()
    (tmp_path / "ase" / "POSCAR").write_text((tmp_path / "POSCAR").read_text())
    (tmp_path / "ase" / "ase_md.json").write_text(json.dumps({
        "models": names, "ensemble": "nvt", "temp": 300, "press": None, "nsteps": 0, "trj_freq": 10, "dt": 0.001,
        "taut": 0.1, "taup": 0.5, "seed": 1, "nopbc": False, "constraints": [], "relative": None,
        "relative_v": None}))
    env = {**os.environ, **THREADS}
    subprocess.run([sys.executable, "-m", "dpgen_lite.explore.ase_md_runner"], cwd=tmp_path / "ase", check=True,
                   env=env, capture_output=True)
    dpdata.System(str(tmp_path / "POSCAR"), fmt="vasp/poscar").to("lammps/lmp", str(tmp_path / "lmp" / "conf.lmp"))
    (tmp_path / "lmp" / "in.lammps").write_text(lammps_input(
        models=names, masses=[63.546], temp=300, press=None, ensemble="nvt", nsteps=0, trj_freq=10, dt=0.001,
        seed=1))
    subprocess.run(f"{library_path_env()} {executable('lmp')} -i in.lammps", shell=True, cwd=tmp_path / "lmp",
                   check=True, env=env, capture_output=True)
    ase_row = read_model_devi(tmp_path / "ase" / "model_devi.out")
    lmp_row = read_model_devi(tmp_path / "lmp" / "model_devi.out")
    assert ase_row.shape == lmp_row.shape == (1, 7)
    assert ase_row[0, 4] > 1e-3  # a real force deviation, not zeros on both sides
    np.testing.assert_allclose(ase_row[:, [1, 3, 4, 6]], lmp_row[:, [1, 3, 4, 6]], rtol=1e-5)


def ase_param(param: dict, constraints: list[dict]) -> dict:
    """The quickstart shrunk (one job, 300 K NVT, 60 steps) explored by the ase engine."""
    p = tiny(param, n_jobs=1)
    p["model_devi_engine"] = "ase"
    p["model_devi_jobs"] = [{"sys_idx": [0], "temps": [300], "nsteps": 60, "trj_freq": 10, "ensemble": "nvt",
                             "constraints": constraints}]
    return p


def test_quickstart_iteration_with_the_ase_engine(cu_run, monkeypatch):
    """One iteration of the quickstart explored by ASE MD, end to end through ``dpgen run``: the
    bottom atoms held by ``FixAtoms`` stay put, one task failing midway keeps its frames and is
    listed in ``selection.json``, the chosen candidates are the trajectories' frames and come
    back labelled, and the next iteration's models train on them."""
    base, param = cu_run
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the tasks import tests.crashing_calc
    held = list(range(8))
    constraint = {"class": "tests.crashing_calc.CrashingFixAtoms",
                  "kwargs": {"indices": held, "after": 25, "crash_in": ["task.000.000001"]}}
    write_param(base, ase_param(param, [constraint]))
    out = subprocess.run([sys.executable, "-m", "dpgen_lite.cli", "run", "param.json"], cwd=base,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert [s for s in read_record(base) if s[0] == 0] == [(0, k) for k in range(9)]
    md = base / "iter.000000" / "01.model_devi"
    whole, crashed = md / "task.000.000000", md / "task.000.000001"
    assert json.loads((whole / "job.json").read_text())["temp"] == 300
    assert read_model_devi(whole / "model_devi.out")[:, 0].tolist() == [0, 10, 20, 30, 40, 50, 60]
    with Trajectory(str(whole / "traj.traj")) as traj:
        frames = [a.get_positions() for a in traj]
    assert len(frames) == 7
    moved = np.abs(np.array(frames) - frames[0]).max(axis=(0, 2))
    assert moved[held].max() == 0 and moved[8:].min() > 0
    # the failed task: its rows before the error are kept and selected from
    kept = read_model_devi(crashed / "model_devi.out")
    assert 0 < len(kept) < 7
    selection = json.loads((base / "iter.000000" / "02.fp" / "selection.json").read_text())
    failed = selection["failed_md_tasks"]
    assert [f["task"] for f in failed] == ["iter.000000/01.model_devi/task.000.000001"]
    assert "atoms flew apart" in failed[0]["reason"] and failed[0]["frames"] == len(kept)
    assert "MD task failed: task.000.000001" in (base / "dpgen.log").read_text()
    system = selection["systems"]["000"]
    assert system["candidate"] == 7 + len(kept)  # trust levels 0/100: every frame is a candidate
    chosen = system["chosen"]
    assert len(chosen) == 3
    labelled = dpdata.LabeledSystem(str(base / "iter.000000" / "02.fp" / "data.000"), fmt="deepmd/npy")
    assert len(labelled) == 3
    for task, step, row in chosen:
        with Trajectory(str(base / task / "traj.traj")) as traj:
            start = traj[row].get_positions()
        assert step == 10 * row
        assert np.abs(labelled["coords"] - start).max(axis=(1, 2)).min() < 1e-4
    # iteration 1 trains on the init data and the 3 labels
    train = base / "iter.000001" / "00.train"
    systems = json.loads((train / "000" / "input.json").read_text())["training"]["training_data"]["systems"]
    sizes = sorted(len(dpdata.LabeledSystem(str(train / "000" / s), fmt="deepmd/npy")) for s in systems)
    assert sizes == [3, 6] and (train / "000" / "frozen_model.pb").is_file()


@pytest.mark.parametrize("job, message", [
    ({"ensemble": "npt", "press": [1.0], "constraints": [{"class": "ase.constraints.FixAtoms",
                                                          "kwargs": {"indices": [0]}}]},
     "ASE's MTK barostats do not support constraints"),
    ({"constraints": [{"class": "ase.constraints.Nope"}]}, r"constraints\[0\].class = 'ase.constraints.Nope' "
                                                          "cannot be imported"),
    ({"constraints": [{"class": "ase.constraints.FixAtoms", "kwargs": {"indexes": [0]}}]}, "indexes"),
    ({"ensemble": "npt-aniso", "press": [1.0]}, r"ensemble = 'npt-aniso': allowed nve, nvt, npt"),
    ({"template": {"lmp": "in.lammps"}}, "template"),
])
def test_ase_engine_refuses_bad_jobs(cu_run, job, message):
    """Each bad job is refused at start, naming the key, the value and the fix."""
    base, param = cu_run
    p = ase_param(param, [])
    p["model_devi_jobs"][0].update(job)
    with pytest.raises(ParamError, match=message):
        validate_run(p, base)
