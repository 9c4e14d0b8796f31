"""After the loop: long training, compression, specialisation, model test; resumable."""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import dpdata
import numpy as np
import pytest

from dpgen_lite.autotest.compare import scalars_of
from dpgen_lite.record import STEP_NAMES, read_record
from dpgen_lite.train.final import FINAL_STEP_NAMES
from dpgen_lite.train.model_test import rmse_from_detail
from tests.conftest import emt_frames, write_param
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
    emt_frames(5, seed=42).to("deepmd/npy", str(folder / "test_set"))
    write_param(folder, {**with_final(param, folder), "test_data_sys": ["test_set"]})
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
    check_report_and_status(folder)
    check_specialise(folder)


def check_specialise(folder: Path) -> None:
    """``dpgen specialise`` on the finished run, twice: the worst of two properties against EMT
    is labelled by EMT and trained on, the other is the guard set, labelled by the final model
    (default) or by EMT; the table has each quantity before and after."""
    from deepmd.infer import DeepPot
    autotest = {"structures": ["confs/000"],
                "relaxation": {"cal_setting": {"relax_pos": True, "relax_shape": True, "relax_vol": True}},
                "properties": [{"type": "eos", "vol_start": 0.94, "vol_end": 1.06, "vol_step": 0.03},
                               {"type": "vacancy", "supercell": [1, 1, 1]}]}
    write_param(folder, autotest, "autotest.json")
    work = folder / "final/04.specialise"
    for guard_labels in ("model", "fp"):
        shutil.rmtree(work, ignore_errors=True)
        out = subprocess.run([*DPGEN, "specialise", "param.json", "--autotest", "autotest.json", "--top", "1",
                              "--weight", "5", "--guard-weight", "2", "--perturb", "1", "--guard-labels", guard_labels],
                             cwd=folder, capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, out.stderr
        assert json.loads((work / "record.json").read_text())["done"] == ["before", "rank", "label", "train", "after"]
        rank = json.loads((work / "rank.json").read_text())
        errors = [e["error_pct"] for e in rank["ranked"]]
        assert len(errors) == 2 and errors == sorted(errors, reverse=True) and rank["picked"] == rank["ranked"][:1]
        # each task's final structure and one displaced copy: the picked property labelled by EMT
        # (fp/data.000), the guard set by the final model (guard/) or by EMT (fp/data.001)
        guard_dir = work / ("guard" if guard_labels == "model" else "fp/data.001")
        labels = [dpdata.LabeledSystem(str(d), fmt="deepmd/npy") for d in (work / "fp/data.000", guard_dir)]
        for k, entry in enumerate(rank["ranked"]):
            tasks = json.loads((work / "before/reference/confs/000" / entry["property"] / "tasks.json").read_text())
            assert labels[k].get_nframes() == 2 * len(tasks["tasks"])
        assert (work / "guard").is_dir() == (guard_labels == "model")
        assert (work / "fp/data.001").is_dir() == (guard_labels == "fp")
        n_fp = labels[0].get_nframes() + (labels[1].get_nframes() if guard_labels == "fp" else 0)
        assert len(list((work / "fp").glob("task.*"))) == n_fp
        guard = labels[1]
        model = DeepPot(json.loads((work / "specialise.json").read_text())["model_before"])
        energies, forces, virials = model.eval(guard["coords"], guard["cells"], guard["atom_types"])
        diff = [np.abs(guard[key] - pred.reshape(guard[key].shape)).max()
                for key, pred in (("energies", energies), ("forces", forces), ("virials", virials))]
        if guard_labels == "model":  # the model's own energies (eV), forces (eV/Å), virials (eV)
            assert max(diff) < 1e-8
        else:  # EMT's, which the model does not reproduce to 1e-4
            assert min(diff) > 1e-4
        # trained from the final (specialised) model: picked frames 5x, guard frames 2x a regular one
        inp = json.loads((work / "train/000/input.json").read_text())["training"]
        assert inp["numb_steps"] == 30 and len(inp["training_data"]["systems"]) == 5  # init, iter 0, elastic, new x2
        blocks = inp["training_data"]["auto_prob"].split(";")[1:]
        probs = [float(b.split(":")[2]) for b in blocks]
        assert probs[2] / probs[1] == pytest.approx(5 * labels[0].get_nframes() / (4.0 * 24), rel=1e-4)
        assert probs[3] / probs[1] == pytest.approx(2 * labels[1].get_nframes() / (4.0 * 24), rel=1e-4)
        table = json.loads((work / "specialise.json").read_text())
        model_before = json.loads((work / "before/model/result.json").read_text())
        model_after = json.loads((work / "after/model/result.json").read_text())
        assert {r["property"] for r in table["rows"]} == {"eos_00", "vacancy_00"}
        for row in table["rows"]:
            assert row["picked"] == (row["property"] == rank["picked"][0]["property"])
            assert row["before"] == scalars_of(model_before, "confs/000", row["property"])[row["quantity"]]
            assert row["after"] == scalars_of(model_after, "confs/000", row["property"])[row["quantity"]]
            assert row["ratio"] == pytest.approx(row["error_after_pct"] / row["error_before_pct"])
        assert (work / "specialise.md").read_text() in out.stdout
        assert table["model_after"].endswith("04.specialise/train/000/compressed_model.pb")


def check_report_and_status(folder: Path) -> None:
    """``dpgen report`` of the finished run agrees with its files; ``dpgen status`` names the
    next step right after every recorded step, final steps included."""
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    out = subprocess.run([*DPGEN, "report", ".", "--json", "--out", str(folder.parent / "figs")], cwd=folder,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == before  # read only
    assert doc["status"] == "finished" and len(doc["iterations"]) == 2
    total = 0
    for it in doc["iterations"]:
        if (folder / f"iter.{it['iteration']:06d}/02.fp/selection.json").is_file():
            sel = json.loads((folder / f"iter.{it['iteration']:06d}/02.fp/selection.json").read_text())
            row = it["systems"][0]
            assert (row["candidate"], row["accurate"], row["failed"]) == tuple(sel["systems"]["000"][k] for k in
                                                                              ("candidate", "accurate", "failed"))
            assert it["accurate_ratio"] == pytest.approx(sel["accurate_ratio"])
        total += it["labels_added"] or 0
        assert it["labels_total"] == total
        test = json.loads((folder / f"iter.{it['iteration']:06d}/00.train/model_test.json").read_text())
        mean_f = sum(r["force_rmse_meV_per_A"] for r in test["models"].values()) / len(test["models"])
        assert it["model_test"]["force_rmse_meV_per_A"] == pytest.approx(mean_f)
        assert it["model_test"]["n_frames"] == test["n_frames"] >= 5  # the test set, then held-out labels too
        assert set(it["walltime_s"]) == {"train", "md", "fp"}
    assert doc["final"]["model_test"]["models"].keys() == json.loads(
        (folder / "final/model_test.json").read_text())["models"].keys()
    names = {Path(f).name for f in doc["figures"]}
    assert names == {"ratios.png", "labels.png", "walltime.png", "model_devi.png", "test_rmse.png",
                     "devi_vs_error.png"}
    for f in doc["figures"]:
        assert Path(f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and Path(f).stat().st_size > 1000
    table = subprocess.run([*DPGEN, "report", "."], cwd=folder, capture_output=True, text=True).stdout
    assert "run ended" in table
    # status after every prefix of the record (steps 0-16): the step the run took next
    original = (folder / "record.dpgen").read_text()
    record = read_record(folder)
    names = STEP_NAMES + FINAL_STEP_NAMES
    for k in range(len(record) + 1):
        (folder / "record.dpgen").write_text("".join(f"{i} {s}\n" for i, s in record[:k]))
        said = subprocess.run([*DPGEN, "status", str(folder)], capture_output=True, text=True).stdout.strip()
        if k == len(record):
            assert said == "next: iteration 1 step 17 (publish (every step done))", said
            continue
        nxt = record[k]
        assert said.startswith(f"next: iteration {nxt[0]} step {nxt[1]} ({names[nxt[1]]})"), (k, said)
        assert ("the loop has ended" in said) == (nxt == (1, 9)), (k, said)
    (folder / "record.dpgen").write_text(original)


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


def test_special_sets_from_autotest_makers(tmp_path):
    """A special set of Autotest's task structures: the same cells the property computes
    (vacancy supercell less one atom, the γ-line's tilted cells, every surface termination)."""
    import ase.build
    import ase.io
    import numpy as np

    from dpgen_lite.autotest.properties.gamma import Gamma
    from dpgen_lite.autotest.schema import property_arg
    from dpgen_lite.params import normalize
    from dpgen_lite.train.final import generated_structures

    ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).write(tmp_path / "POSCAR", format="vasp")
    made = lambda **gen: generated_structures({"structure": "POSCAR", **gen}, tmp_path, ["Cu"])  # noqa: E731
    [vac] = made(type="vacancy", supercell=[2, 2, 2])
    assert vac.get_natoms() == 31
    gamma = {"plane_miller": [1, 1, 1], "slip_direction": [1, 1, -2], "n_steps": 4}
    line = made(type="gamma", **gamma)
    own = Gamma(normalize(property_arg(Gamma), {"type": "gamma", **gamma}, "x")).make(
        ase.io.read(tmp_path / "POSCAR"), None)
    assert len(line) == 5 and all(np.allclose(s["cells"][0], a.cell.array) for s, (a, _) in zip(line, own))
    assert len(made(type="surface", miller=[[1, 1, 1], [1, 0, 0]], min_slab_size=6, min_vacuum_size=6)) == 2
    assert len(made(type="eos", vol_start=0.95, vol_end=1.05, vol_step=0.025)) >= 4
