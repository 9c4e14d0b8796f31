"""Exploration on real LAMMPS with real models: a DP-GEN template job with rev_mat over two
temperatures and two pressures, a crashed MD task that does not stop the run, and the alignment
of deviation rows with dump frames (checked on files as LAMMPS writes them)."""

import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dpgen_lite.context import Context
from dpgen_lite.dispatch import executable
from dpgen_lite.explore.lammps import LammpsEngine
from dpgen_lite.explore.outcome import REPORT, NoMDFrames, align, check_tasks, dump_frames
from dpgen_lite.explore.stage import make_model_devi, run_model_devi
from dpgen_lite.lammps_exe import lmp_binary
from dpgen_lite.label.stage import candidate_frames
from dpgen_lite.schema import validate_run
from dpgen_lite.select.model_devi import read_model_devi
from dpgen_lite.select.stage import select

from .conftest import THREADS
from .test_loop import tiny
from .test_template import TEMPLATE, template_job

def run_folder(folder: Path, param: dict, models: list[Path], jobs: list[dict], template: str, **kw) -> Context:
    """The quickstart's run folder (shrunk as tests/test_loop.py's tiny()) with ``jobs``, the
    template as ``in.lammps`` and ``models`` as the frozen models of iteration 0."""
    (folder / "in.lammps").write_text(template)
    normalized, _ = validate_run({**tiny(param), "model_devi_jobs": jobs, **kw}, folder)
    train = folder / "iter.000000" / "00.train"
    train.mkdir(parents=True)
    for k, model in enumerate(models):
        os.symlink(model, train / f"graph.{k:03d}.pb")
    return Context(normalized, {}, folder)


def steps_of(task: Path) -> tuple[list[int], list[int]]:
    """Steps of the rows of model_devi.out and of the frames of traj.dump."""
    rows = read_model_devi(task / "model_devi.out")[:, 0].astype(int).tolist()
    return rows, dump_frames(task / "traj.dump")[:, 2].tolist()


def test_template_job_with_rev_mat_runs_on_lammps(cu_run, models):
    """rev_mat over 300/600 K and 1/1000 bar: 4 tasks for the configuration, each input with its
    values, each task's model_devi.out a row every trj_freq steps matching the dump frames; the
    selection reads them."""
    folder, param = cu_run
    ctx = run_folder(folder, param, models, [template_job()], TEMPLATE, sys_configs=[["001/POSCAR"]])
    make_model_devi(ctx, 0)
    run_model_devi(ctx, 0)
    md = ctx.path(0, "01.model_devi")
    tasks = sorted(md.glob("task.*"))
    assert [t.name for t in tasks] == [f"task.000.{i:06d}" for i in range(4)]
    for i, task in enumerate(tasks):
        temp, press = [(t, p) for t in (300, 600) for p in (1, 1000)][i]
        meta = json.loads((task / "job.json").read_text())
        assert (meta["V_TEMP"], meta["V_PRES"], meta["V_NSTEPS"]) == (temp, press, 60)
        assert meta["conf"].endswith("001/POSCAR")
        text = (task / "input.lammps").read_text()
        assert f"variable        TEMP            equal {temp}\n" in text
        assert f"variable        PRES            equal {press}\n" in text
        rows, frames = steps_of(task)
        assert rows == frames == list(range(0, 61, 10)), task.name
        devi = read_model_devi(task / "model_devi.out")
        assert np.isfinite(devi).all() and (devi[:, 4] > 0).all()  # two different models disagree
        assert (task / "lammps.exit").read_text().strip() == "0"
    assert json.loads((md / REPORT).read_text()) == {"tasks": 4, "failed": [], "realigned": []}
    summary = select(ctx, 0)
    system = summary["systems"]["000"]
    assert system["accurate"] + system["candidate"] + system["failed"] == 4 * 7
    assert summary["failed_md_tasks"] == []


def test_local_lmp_script_becomes_its_binary_with_identical_results(cu_run, models):
    """On a stage that runs here, this environment's ``lmp`` script is replaced by the binary it
    starts (with the DeePMD plugin's environment); elsewhere the command stays as given.  The
    binary's deviations and trajectory are those of the script, to the last digit."""
    folder, param = cu_run
    ctx = run_folder(folder, param, models, [template_job()], TEMPLATE, sys_configs=[["001/POSCAR"]])
    md = LammpsEngine(ctx.param)
    conf = ctx.stage_conf("model_devi")
    for command in (None, executable("lmp")):
        program = md.program({**conf, "command": command})
        assert program.endswith(shlex.quote(lmp_binary())) and "LAMMPS_PLUGIN_PATH=" in program
    slurm = {**conf, "machine": {**conf["machine"], "batch_type": "Slurm"}, "command": "lmp"}
    assert md.program(slurm) == "lmp"
    assert md.program({**conf, "command": "mpirun -np 2 lmp"}) == "mpirun -np 2 lmp"
    make_model_devi(ctx, 0)
    run_model_devi(ctx, 0)
    task = sorted(ctx.path(0, "01.model_devi").glob("task.*"))[0]
    script = task.with_name("script")
    shutil.copytree(task, script)
    subprocess.run([executable("lmp"), "-i", "input.lammps"], cwd=script, check=True, capture_output=True,
                   env={**os.environ, **THREADS})
    for name in ("model_devi.out", "traj.dump"):
        assert (script / name).read_text() == (task / name).read_text(), name


def test_plugin_env_is_computed_once_per_installation(tmp_path, monkeypatch):
    """The DeePMD plugin's environment (seconds of deepmd-kit imports) is kept in the cache folder
    and read back from it by the next process."""
    from dpgen_lite import lammps_exe

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    lammps_exe.plugin_env.cache_clear()
    env = dict(lammps_exe.plugin_env())
    assert env["LAMMPS_PLUGIN_PATH"] and lammps_exe.cache_file().parent == tmp_path / "dpgen_lite"
    assert dict(json.loads(lammps_exe.cache_file().read_text())) == env
    lammps_exe.cache_file().write_text(json.dumps([["LAMMPS_PLUGIN_PATH", "/from/the/cache"]]))
    lammps_exe.plugin_env.cache_clear()  # a new process
    assert dict(lammps_exe.plugin_env()) == {"LAMMPS_PLUGIN_PATH": "/from/the/cache"}
    lammps_exe.plugin_env.cache_clear()
    # with the cache, a process builds the command without TensorFlow or PyTorch (``import lammps``
    # would load both through deepmd-kit's plugin entry point: seconds at start and at exit)
    probe = ("import sys; from dpgen_lite.lammps_exe import lmp_command; "
             "from dpgen_lite.autotest.calculators.lammps import potentials_dir; "
             "cmd = lmp_command(deepmd=True); assert potentials_dir().is_dir(); "
             "print(cmd, sorted({'lammps', 'tensorflow', 'torch'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)}).stdout
    assert "LAMMPS_PLUGIN_PATH=/from/the/cache" in out and out.rstrip().endswith("[]")
    assert "OMP_NUM_THREADS" not in out  # deepmd-kit's threads: the machine's setting
    assert "OMP_NUM_THREADS=1 " in lammps_exe.lmp_command()  # no /omp style: one thread, no spin-waiting


#: a template whose f f f box loses atoms at V_TEMP = 2000 K within a few dozen steps
CRASHING = (TEMPLATE.replace("boundary        p p p", "boundary        V_BOUNDARY")
            .replace("variable        PRES            equal V_PRES\n", "")
            .replace("fix             1 all npt temp ${TEMP} ${TEMP} ${TAU_T} iso ${PRES} ${PRES} ${TAU_P}",
                     "fix             1 all nvt temp ${TEMP} ${TEMP} ${TAU_T}\nthermo_modify lost error"))


def test_crashed_md_task_does_not_stop_the_run(cu_run, models, caplog):
    """Two tasks at 2000 K, one in a periodic box, one in a fixed (f f f) box that loses atoms:
    the second ends with LAMMPS' "Lost atoms" error; the run goes on, its frames before the crash
    are used (rows and frames aligned, the trajectory readable), it is listed as failed in
    md_report.json, dpgen.log and selection.json, and it is not run again on a rerun."""
    folder, param = cu_run
    job = {"sys_idx": [0], "trj_freq": 10, "template": {"lmp": "in.lammps"},
           "rev_mat": {"lmp": {"V_NSTEPS": [100], "V_TEMP": [2000], "V_BOUNDARY": ["p p p", "f f f"]}}}
    ctx = run_folder(folder, param, models, [job], CRASHING, sys_configs=[["000/POSCAR"]], fp_task_max=100)
    caplog.set_level(logging.INFO, logger="dpgen_lite")
    make_model_devi(ctx, 0)
    run_model_devi(ctx, 0)
    md = ctx.path(0, "01.model_devi")
    normal, crashed = md / "task.000.000000", md / "task.000.000001"
    assert steps_of(normal) == (list(range(0, 101, 10)),) * 2
    report = json.loads((md / REPORT).read_text())
    assert [f["task"] for f in report["failed"]] == ["task.000.000001"]
    failure = report["failed"][0]
    assert failure["reason"].startswith("ERROR: Lost atoms") and failure["exit_code"] == 1
    rows, frames = steps_of(crashed)
    assert rows == frames == list(range(0, 10 * failure["frames"], 10)) and 2 <= failure["frames"] < 11
    assert f"MD task failed: task.000.000001: {failure['reason']}; its {failure['frames']} frame(s) before the " \
           "failure are used" in caplog.text

    summary = select(ctx, 0)
    system = summary["systems"]["000"]
    assert system["accurate"] + system["candidate"] + system["failed"] == 11 + failure["frames"]
    assert summary["failed_md_tasks"] == [{**failure, "task": "iter.000000/01.model_devi/task.000.000001"}]
    chosen = {(task, step) for task, step, _ in system["chosen"]}
    assert any(task.endswith("task.000.000001") for task, _ in chosen)
    frames_read, _ = candidate_frames(ctx, 0)  # the labelling reads each chosen frame from the dumps
    assert len(frames_read) == len(chosen) and all(f.get_natoms() == 32 for _, f, _ in frames_read)

    before = (crashed / "log.lammps").stat().st_mtime_ns
    run_model_devi(ctx, 0)  # a rerun (resumed run): the crashed task is not run again
    assert (crashed / "log.lammps").stat().st_mtime_ns == before
    assert json.loads((md / REPORT).read_text())["failed"] == report["failed"]


def write_task(task: Path, rows: list[int], frames: list[tuple[int, int]], code: int | None = None,
               cut_last: bool = False) -> None:
    """A task's model_devi.out with ``rows`` (steps) and traj.dump with ``frames`` (step, natoms),
    as LAMMPS writes them; ``cut_last``: the last frame cut short."""
    task.mkdir(parents=True)
    (task / "model_devi.out").write_text(
        "#       step         max_devi_v         min_devi_v         avg_devi_v         max_devi_f"
        "         min_devi_f         avg_devi_f\n"
        + "".join(f"{s:12d} {s / 1000:.6e} 0 0 {s / 100:.6e} 0 0\n" for s in rows))
    text = "".join(
        f"ITEM: TIMESTEP\n{s}\nITEM: NUMBER OF ATOMS\n{n}\nITEM: BOX BOUNDS pp pp pp\n0 3.6\n0 3.6\n0 3.6\n"
        "ITEM: ATOMS id type x y z\n" + "".join(f"{i + 1} 1 {s / 100} 0.5 0.5\n" for i in range(n))
        for s, n in frames)
    (task / "traj.dump").write_text(text[:-20] if cut_last else text)
    if code is not None:
        (task / "lammps.exit").write_text(f"{code}\n")


def test_alignment_of_several_runs_and_a_minimize(tmp_path):
    """As LAMMPS writes them for `run 30`, `run 20`, `minimize`, `run 20` (seen on this LAMMPS):
    each run repeats its first step's deviation row, the minimize dumps step 55 with no row;
    after align, frame k is row k, one per step."""
    task = tmp_path / "task.000.000000"
    write_task(task, [0, 10, 20, 30, 30, 40, 50, 50, 60, 70],
               [(s, 4) for s in (0, 10, 20, 30, 40, 50, 55, 60, 70)])
    assert align(task) == {"frames": 8, "rows_dropped": 2, "frames_dropped": 1}
    rows, frames = steps_of(task)
    assert rows == frames == [0, 10, 20, 30, 40, 50, 60, 70]
    assert (task / "model_devi.out").read_text().startswith("#       step")
    assert read_model_devi(task / "model_devi.out")[3, 4] == pytest.approx(0.3)
    assert align(task) == {"frames": 8, "rows_dropped": 0, "frames_dropped": 0}  # idempotent


def test_alignment_after_a_crash(tmp_path):
    """A crash: the deviation of the last step written but not its frame, a frame cut short,
    a frame with lost atoms: the rows and frames before are kept."""
    task = tmp_path / "task.000.000000"
    write_task(task, [0, 10, 20, 30], [(0, 4), (10, 4), (20, 4), (30, 4)], code=1, cut_last=True)
    assert align(task)["frames"] == 3
    assert steps_of(task) == ([0, 10, 20], [0, 10, 20])
    other = tmp_path / "task.000.000001"
    write_task(other, [0, 10, 20], [(0, 4), (10, 4), (20, 3)])
    assert align(other)["frames"] == 2 and steps_of(other) == ([0, 10], [0, 10])


def test_every_task_failing_before_a_frame_stops_the_run(tmp_path):
    """No frame at all (the lmp command missing, a broken template): a set-up error, not a result."""
    for k in range(2):
        write_task(tmp_path / f"task.000.{k:06d}", [], [], code=127)
        (tmp_path / f"task.000.{k:06d}" / "model_devi.err").write_text("sh: 1: lmp: not found\n")
    with pytest.raises(NoMDFrames, match="every MD task failed before its first frame .*lmp: not found"):
        check_tasks(tmp_path, set(), LammpsEngine({}))
    write_task(tmp_path / "task.000.000002", [0, 10], [(0, 4), (10, 4)], code=0)
    report = check_tasks(tmp_path, set(), LammpsEngine({}))
    assert [f["task"] for f in report["failed"]] == ["task.000.000000", "task.000.000001"]
    assert report["failed"][0]["reason"] == "sh: 1: lmp: not found"
