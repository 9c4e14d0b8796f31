"""Redoing steps of a finished run with new settings, the DP-GEN way (deleting lines of
``record.dpgen``) and with ``dpgen redo``, on the real programs; retrying failed fp tasks."""

import json
import os
import re
import subprocess
from pathlib import Path

import dpdata
import numpy as np
from ase.calculators.emt import EMT

from dpgen_lite.record import read_record
from tests.conftest import write_param
from tests.test_loop import DPGEN, tiny

#: every step of a two-iteration tiny run, then the final models' training
DONE = [(i, s) for i in range(2) for s in range(9)] + [(2, s) for s in range(3)]


def dpgen(folder: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([*DPGEN, *args], cwd=folder, capture_output=True, text=True, timeout=timeout)


def emt_labels(system: dpdata.LabeledSystem, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """EMT(**kwargs) energies (n_frames,) eV and forces (n_frames, n_atoms, 3) eV/Å of ``system``'s frames."""
    energies, forces = [], []
    for atoms in system.to("ase/structure"):
        atoms.calc = EMT(**kwargs)
        energies.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces())
    return np.array(energies), np.array(forces)


def training_sources(folder: Path, iteration: int) -> set[str]:
    """The iteration folders whose labels the first model of ``iteration`` trained on."""
    train = (folder / f"iter.{iteration:06d}/00.train/000").resolve()
    systems = json.loads((train / "input.json").read_text())["training"]["training_data"]["systems"]
    return {p for s in systems for p in Path(os.path.realpath(train / s)).parts if p.startswith("iter.")}


def test_redo_fp_and_model_devi_with_new_settings(cu_run):
    folder, param = cu_run
    param = tiny(param)
    write_param(folder, param)
    out = dpgen(folder, "run", "param.json")
    assert out.returncode == 0, out.stderr
    assert read_record(folder) == DONE
    old0 = dpdata.LabeledSystem(str(folder / "iter.000000/02.fp/data.000"), fmt="deepmd/npy")

    # 1. DP-GEN's way: delete iteration 1's lines from make_fp on, change fp_params, rerun
    lines = (folder / "record.dpgen").read_text().splitlines()
    (folder / "record.dpgen").write_text("\n".join(lines[: lines.index("1 6")]) + "\n")
    param["fp_params"]["kwargs"] = {"asap_cutoff": True}
    write_param(folder, param)
    out = dpgen(folder, "run", "param.json")
    assert out.returncode == 0, out.stderr
    assert read_record(folder) == DONE
    log = (folder / "dpgen.log").read_text()
    assert "removed iter.000001/02.fp (but 4 file(s) of the selection)" in log
    assert re.search(r"iter.000001/02.fp: \d+ queued, 0 running, 0 finished, 0 failed",  # run afresh
                     log.split("resuming at iteration 1 step 6")[1])
    report = json.loads((folder / "iter.000001/02.fp/fp_report.json").read_text())
    assert report["labelled"] == 3 and report["failed"] == []
    new1 = dpdata.LabeledSystem(str(folder / "iter.000001/02.fp/data.000"), fmt="deepmd/npy")
    e_new, f_new = emt_labels(new1, asap_cutoff=True)
    e_old, _ = emt_labels(new1)
    np.testing.assert_allclose(new1["energies"], e_new, atol=1e-6)  # the new calculator's labels
    np.testing.assert_allclose(new1["forces"], f_new, atol=1e-6)
    assert np.abs(new1["energies"] - e_old).min() > 1e-3             # not the old ones
    # iteration 0 kept its labels; the final models were trained again on the new ones
    same0 = dpdata.LabeledSystem(str(folder / "iter.000000/02.fp/data.000"), fmt="deepmd/npy")
    np.testing.assert_array_equal(same0["energies"], old0["energies"])
    assert training_sources(folder, 2) == {"iter.000000", "iter.000001"}
    manifest = json.loads((folder / "models/manifest.json").read_text())
    assert manifest["record"] == [2, 2]

    # 2. dpgen redo: iteration 1 from make_model_devi with trust levels that find nothing to label
    out = dpgen(folder, "redo", "1", "3")
    assert out.returncode == 0, out.stderr
    assert "record.dpgen: removed 9 line(s), '1 3' to '2 2'" in out.stdout
    assert "dpgen run will remove iter.000001/01.model_devi" in out.stdout
    assert "dpgen run will remove iter.000002\n" in out.stdout
    assert read_record(folder) == DONE[:12]
    param.update(model_devi_f_trust_lo=50.0, model_devi_f_trust_hi=100.0)
    write_param(folder, param)
    out = dpgen(folder, "run", "param.json")
    assert out.returncode == 0, out.stderr
    assert read_record(folder) == DONE
    sel = json.loads((folder / "iter.000001/02.fp/selection.json").read_text())
    assert sel["trust_levels"]["f_lo"] == 50.0
    assert sel["systems"]["000"]["accurate"] == 14 and sel["systems"]["000"]["chosen"] == []
    fp1 = folder / "iter.000001/02.fp"
    assert not list(fp1.glob("task.*")) and not list(fp1.glob("data.*"))
    # the labels of the abandoned attempt are gone and never trained on
    assert "iter.000001" not in training_sources(folder, 2)

    # 3. nothing to redo beyond the record: a clear error, exit 2
    out = dpgen(folder, "redo", "5", "0")
    assert out.returncode == 2 and "iteration 5 step 0 is not in" in out.stderr and "Traceback" not in out.stderr


def test_failed_fp_tasks_run_again_after_a_fix(cu_run, monkeypatch):
    """A run stopped by ratio_failed: once the cause is fixed, `dpgen run` makes and runs
    only the failed task again (with the new fp_params), keeps the others, and goes on."""
    folder, param = cu_run
    param = tiny(param, n_jobs=1)
    bad = "task.000.000001"
    param["fp_params"] = {"calculator": "tests.crashing_calc.CrashingEMT", "kwargs": {"crash_in": [bad]}}
    param.update(fp_task_max=3, ratio_failed=0.2)
    write_param(folder, param)
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    out = dpgen(folder, "run", "param.json")
    assert out.returncode == 1 and "1 of 3 fp tasks failed" in out.stderr, out.stderr
    assert "only the failed tasks are made and run again" in out.stderr
    assert read_record(folder)[-1] == (0, 7)
    fp = folder / "iter.000000/02.fp"
    labels = {t: (fp / t / "label.extxyz").stat().st_mtime_ns for t in ("task.000.000000", "task.000.000002")}

    # rerun unchanged: the task fails again, the run stops again
    out = dpgen(folder, "run", "param.json")
    assert out.returncode == 1 and "1 of 3 fp tasks failed" in out.stderr
    # fixed: only that task runs again
    param["fp_params"]["kwargs"] = {"crash_in": []}
    write_param(folder, param)
    out = dpgen(folder, "run", "param.json")
    assert out.returncode == 0, out.stderr
    log = (folder / "dpgen.log").read_text()
    assert log.count(f"running the 1 failed fp task(s) again: {bad}") == 2
    assert "iter.000000/02.fp: 1 task(s) in 1 job(s)" in log
    assert {t: (fp / t / "label.extxyz").stat().st_mtime_ns for t in labels} == labels  # not run again
    report = json.loads((fp / "fp_report.json").read_text())
    assert report["labelled"] == 3 and report["failed"] == [] and not report["stopped"]
    data = dpdata.LabeledSystem(str(fp / "data.000"), fmt="deepmd/npy")
    np.testing.assert_allclose(data["energies"], emt_labels(data)[0], atol=1e-6)
    assert read_record(folder)[-1] == (1, 2)
