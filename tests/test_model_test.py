"""The models against the truth after every training: dp test RMSE and deviation against true error."""

import json
import os
import re

import ase.build
import dpdata
import numpy as np
import pytest
from ase.calculators.emt import EMT
from ase.io.trajectory import Trajectory
from deepmd.infer import DeepPot

from dpgen_lite.context import Context
from dpgen_lite.params import ParamError
from dpgen_lite.schema import validate_run
from dpgen_lite.train.model_test import reuse_test, test_iteration as run_model_test
from dpgen_lite.train.stage import graphs

from .conftest import emt_frames
from .test_loop import tiny


def test_set_rmse_and_deviation_match_the_models(cu_run, models, monkeypatch):
    """dp test through dpdispatcher on a deepmd/npy set and an ASE trajectory (converted by dpdata):
    the RMSEs and per-frame deviations equal deepmd-kit's Python inference on the same frames.
    On one core both models are tested in one process (dp_task), with the same results."""
    folder, param = cu_run
    truth = emt_frames(4, seed=11)
    truth.to("deepmd/npy", str(folder / "test_npy"))
    hot = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    with Trajectory(str(folder / "hot.traj"), "w") as traj:
        for k in range(3):
            atoms = hot.copy()
            atoms.rattle(0.15, seed=100 + k)
            atoms.calc = EMT()
            atoms.get_potential_energy()
            traj.write(atoms)
    p = tiny(param, n_jobs=1)
    p.update(test_data_sys=["test_npy"], numb_models=2)
    normalized, _ = validate_run(p, folder)
    ctx = Context(normalized, {}, folder)
    train = ctx.path(0, "00.train")
    train.mkdir(parents=True)
    for k, model in enumerate(models):
        os.symlink(model, train / f"graph.{k:03d}.pb")
    report = run_model_test(ctx, 0, graphs(ctx, 0))
    assert report == json.loads((train / "model_test.json").read_text())
    assert report["n_frames"] == 4 and set(report["models"]) == {"graph.000", "graph.001"}

    dps = [DeepPot(str(m)) for m in models]
    coords, cells = truth["coords"].reshape(4, -1), truth["cells"].reshape(4, -1)
    preds = [dp.eval(coords, cells, truth["atom_types"]) for dp in dps]  # energy, force, virial
    for k, name in enumerate(("graph.000", "graph.001")):
        force = np.sqrt(np.mean((preds[k][1].reshape(4, -1, 3) - truth["forces"]) ** 2)) * 1e3
        energy = np.sqrt(np.mean(((preds[k][0].ravel() - truth["energies"]) / 32) ** 2)) * 1e3
        assert report["models"][name]["force_rmse_meV_per_A"] == pytest.approx(force, rel=1e-5)
        assert report["models"][name]["energy_rmse_meV_per_atom"] == pytest.approx(energy, rel=1e-5)
    forces = np.stack([pr[1].reshape(4, -1, 3) for pr in preds])
    devi = np.linalg.norm(np.std(forces, axis=0), axis=-1).max(axis=1)
    error = np.linalg.norm(forces[0] - truth["forces"], axis=-1).max(axis=1)
    np.testing.assert_allclose(report["deviation"]["max_devi_f"], devi, rtol=1e-5)
    np.testing.assert_allclose(report["deviation"]["max_error_f"], error, rtol=1e-5)
    assert -1 <= report["deviation"]["spearman"] <= 1

    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert run_model_test(ctx, 0, graphs(ctx, 0)) == report
    text = (train / "test" / "run" / "submission.json").read_text()
    commands = {c for c in re.findall(r'"command": "([^"]*)"', text) if " test -m " in c}
    assert len(commands) == 1 and commands.pop().count("--then") == 1

    # any dpdata format: an ASE trajectory, converted under 00.train/test
    ctx.param.update(test_data_sys=["hot.traj"], test_data_fmt="ase/traj")
    report = run_model_test(ctx, 0, graphs(ctx, 0))
    assert report["n_frames"] == 3 and report["systems"] == ["iter.000000/00.train/test/user.000"]
    assert report["models"]["graph.000"]["force_rmse_meV_per_A"] > 0


@pytest.mark.parametrize("entry, fmt, message", [
    ("nowhere", "deepmd/npy", "test_data_sys: .*nowhere: no such file"),
    ("al", "deepmd/npy", r"holds \['Al'\], not in type_map"),
    ("cu.txt", "vasp/outcar", "cannot be read as test_data_fmt = 'vasp/outcar'"),
])
def test_bad_test_data_is_refused(cu_run, entry, fmt, message):
    folder, param = cu_run
    al = ase.build.bulk("Al", "fcc", a=4.05, cubic=True)
    al.calc = EMT()
    al.get_potential_energy()
    dpdata.LabeledSystem(al, fmt="ase/structure").to("deepmd/npy", str(folder / "al"))
    (folder / "cu.txt").write_text("not an OUTCAR\n")
    p = tiny(param, n_jobs=1)
    p.update(test_data_sys=[entry], test_data_fmt=fmt)
    with pytest.raises(ParamError, match=message):
        validate_run(p, folder)


def test_reused_models_keep_their_test(tmp_path):
    """An iteration reusing the previous models (nothing labelled) reports the previous test."""
    ctx = Context({}, {}, tmp_path)
    for it in (0, 1):
        ctx.path(it, "00.train").mkdir(parents=True)
    reuse_test(ctx, 1)
    assert not (ctx.path(1, "00.train") / "model_test.json").exists()  # nothing tested before: nothing
    (ctx.path(0, "00.train") / "model_test.json").write_text(json.dumps({"iteration": 0, "n_frames": 7}))
    reuse_test(ctx, 1)
    assert json.loads((ctx.path(1, "00.train") / "model_test.json").read_text()) == {
        "iteration": 1, "n_frames": 7, "reused_from": 0}
