"""The quickstart loop on a real one-node Slurm cluster, locally and over SSH; killed and resumed.

The cluster (munge, slurmctld, slurmd) and sshd are started once per session by the
``cluster`` fixture of ``tests/hpc.py``.  Machine files are the examples of ``machines/``,
pointed at that cluster.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import dpdata
import numpy as np

from dpgen_lite.dispatch import RECORD, STAGES, THREAD_ENVS
from dpgen_lite.record import read_record
from tests.conftest import write_param
from tests.hpc import cluster  # noqa: F401  (session fixture)
from tests.test_loop import DPGEN, tiny

ROOT = Path(__file__).resolve().parents[1]
FP_RUNNER = "python -m dpgen_lite.label.ase_runner"
#: one iteration (steps 0-8), then the final models of iteration 1 (steps 0-2)
DONE = [(0, s) for s in range(9)] + [(1, s) for s in range(3)]
#: the Slurm job names of that run (dpdispatcher names a one-task job after its task)
JOBS = ["iter.000000-00.train-000", "iter.000000-00.train-001",
        *(f"iter.000000-01.model_devi-task.000.00000{i}" for i in range(2)),
        *(f"iter.000000-02.fp-task.000.00000{i}" for i in range(3)),
        "iter.000001-00.train-000", "iter.000001-00.train-001"]


def hpc_machine(example: str, cluster, remote_root: Path) -> dict:  # noqa: F811
    """``machines/<example>.json`` pointed at the test cluster: one CPU and one task per job,
    the venv sourced, polls every second, one retry."""
    mdata = json.loads((ROOT / "machines" / f"{example}.json").read_text())
    for stage in STAGES:
        conf = mdata[stage]
        conf["check_interval"] = 1
        machine = conf["machine"]
        machine.update(remote_root=str(remote_root), retry_count=1)
        if machine["context_type"] == "SSHContext":
            machine["remote_profile"] = cluster.ssh_machine(str(remote_root))["remote_profile"]
        conf["resources"].update(
            cpu_per_node=1, gpu_per_node=0, queue_name="debug", group_size=1, custom_flags=[],
            source_list=[str(Path(sys.executable).parent / "activate")], envs={k: "1" for k in THREAD_ENVS})
    return mdata


def setup_run(cu_run, cluster, example: str, fp_command: str = FP_RUNNER, **param) -> Path:  # noqa: F811
    """A tiny one-job quickstart in ``cu_run``'s folder with ``machine.json`` from ``example``."""
    folder, base = cu_run
    p = tiny(base, n_jobs=1)
    p.pop("final_training", None)  # the loop only: steps 9-16 are not about dispatching
    p.update(param)
    write_param(folder, p)
    mdata = hpc_machine(example, cluster, folder / "remote")
    mdata["fp"]["command"] = fp_command
    (folder / "machine.json").write_text(json.dumps(mdata, indent=1))
    return folder


def start(folder: Path) -> subprocess.Popen:
    """``dpgen run param.json machine.json`` in ``folder``, in the background."""
    return subprocess.Popen([*DPGEN, "run", "param.json", "machine.json"], cwd=folder,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def run(folder: Path, timeout: float = 300) -> None:
    """Run ``dpgen run`` in ``folder`` to the end; assert it succeeded."""
    proc = start(folder)
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err


def jobs_of(cluster, folder: Path) -> list[dict]:  # noqa: F811
    """The Slurm jobs of the run in ``folder`` (their work dir is under its remote root)."""
    return [j for j in cluster.queue() if j["workdir"].startswith(str(folder / "remote"))]


def labelled(folder: Path) -> int:
    """Frames in iteration 0's training data from fp."""
    return dpdata.LabeledSystem(str(folder / "iter.000000/02.fp/data.000"), fmt="deepmd/npy").get_nframes()


def check_quickstart(cluster, folder: Path, n_labelled: int = 3) -> list[dict]:  # noqa: F811
    """The loop ended normally, every step ran once, every task was a Slurm job."""
    assert read_record(folder) == DONE
    assert labelled(folder) == n_labelled
    assert sorted(p.name for p in (folder / "models").iterdir()) == ["graph.000.pb", "graph.001.pb", "manifest.json"]
    jobs = jobs_of(cluster, folder)
    assert set(JOBS) <= {j["name"] for j in jobs}
    return jobs


def test_quickstart_on_slurm_with_a_local_context(cu_run, cluster):  # noqa: F811
    """Every stage through Slurm (LocalContext, remote root on this machine): one sbatch per task."""
    folder = setup_run(cu_run, cluster, "slurm")
    run(folder)
    jobs = check_quickstart(cluster, folder)
    names = Counter(j["name"] for j in jobs)
    assert sorted(names) == sorted(JOBS) and set(names.values()) == {1}, names  # one sbatch per task
    assert {j["state"] for j in jobs} == {"COMPLETED"}
    # the tasks ran in the remote root, their results came back
    assert all(j["workdir"].startswith(str(folder / "remote")) for j in jobs)
    assert (folder / "iter.000000/00.train/000/frozen_model.pb").is_file()
    log = (folder / "dpgen.log").read_text()
    assert "iter.000000/02.fp: 0 queued, 0 running, 3 finished, 0 failed" in log
    assert json.loads((folder / "iter.000000/02.fp" / RECORD).read_text())["salvaged"] == []


def test_quickstart_on_slurm_over_ssh_with_a_failing_fp_task(cu_run, cluster):  # noqa: F811
    """Every stage through SSH to Slurm; one fp task fails on purpose: it is retried once,
    then reported, and the run goes on with the other labels."""
    bad = "task.000.000001"
    folder = setup_run(cu_run, cluster, "slurm_ssh", fp_command=f'test "${{PWD##*/}}" != {bad} && {FP_RUNNER}',
                       ratio_failed=0.5)
    run(folder)
    jobs = check_quickstart(cluster, folder, n_labelled=2)
    names = Counter(j["name"] for j in jobs)
    assert names[f"iter.000000-02.fp-{bad}"] == 2  # first try + retry_count 1
    assert all(n == 1 for name, n in names.items() if bad not in name), names
    report = json.loads((folder / "iter.000000/02.fp/fp_report.json").read_text())
    assert report["tasks"] == 3 and report["labelled"] == 2
    assert [f["task"] for f in report["failed"]] == [bad]
    log = (folder / "dpgen.log").read_text()
    assert f"1 task(s) failed after all retries: {bad}" in log
    assert f"fp task failed: {bad}" in log
    assert "iter.000000/02.fp: 0 queued, 0 running, 2 finished, 1 failed" in log


def wait_for(pred, proc: subprocess.Popen, timeout: float = 180) -> None:
    """Poll ``pred()`` every 0.3 s until it holds; fail if ``dpgen run`` ended or time ran out."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        if proc.poll() is not None:
            raise AssertionError(f"dpgen run ended early: {proc.stderr.read()}")
        time.sleep(0.3)
    raise AssertionError("timed out")


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL ``dpgen run``: its Slurm jobs live on, as on a cluster."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_killed_while_slurm_jobs_run_then_resumed_after_a_machine_edit(cu_run, cluster, tmp_path):  # noqa: F811
    """Kill 1: while training jobs run; the restart re-attaches to them.  Kill 2: while the
    last fp task runs and the two others are done; machine.json's fp queue is then edited
    (new submission hash): the finished fp tasks are recovered, not re-run, only the last
    one is resubmitted.  No job is submitted twice, no labelled frame is lost."""
    flag, started = tmp_path / "slow", tmp_path / "slow_started"
    flag.touch()
    slow = "task.000.000002"
    folder = setup_run(cu_run, cluster, "slurm", fp_command=(
        f'if [ "${{PWD##*/}}" = {slow} ] && [ -e {flag} ]; then touch {started}; sleep 60; fi; {FP_RUNNER}'))

    def states() -> dict[str, list[str]]:
        """Slurm states of this run's jobs, by job name."""
        out: dict[str, list[str]] = {}
        for j in jobs_of(cluster, folder):
            out.setdefault(j["name"], []).append(j["state"])
        return out

    proc = start(folder)
    wait_for(lambda: "RUNNING" in states().get(JOBS[0], []) or "RUNNING" in states().get(JOBS[1], []), proc)
    kill(proc)
    proc = start(folder)
    fp = [f"iter.000000-02.fp-task.000.00000{i}" for i in range(3)]
    wait_for(lambda: started.exists() and (s := states()) and all(s.get(n) == ["COMPLETED"] for n in fp[:2])
             and s.get(fp[2]) == ["RUNNING"], proc)
    kill(proc)
    flag.unlink()
    mdata = json.loads((folder / "machine.json").read_text())
    mdata["fp"]["resources"]["queue_name"] = "other"
    (folder / "machine.json").write_text(json.dumps(mdata, indent=1))
    run(folder)

    jobs = check_quickstart(cluster, folder)
    names = Counter(j["name"] for j in jobs)
    assert all(n == 1 for name, n in names.items() if name != fp[2]), names  # nothing submitted twice
    slow_jobs = sorted((j["partition"], j["state"]) for j in jobs if j["name"] == fp[2])
    assert slow_jobs == [("debug", "CANCELLED"), ("other", "COMPLETED")]
    assert all(j["partition"] == "debug" for j in jobs if j["name"] in fp[:2])
    log = (folder / "dpgen.log").read_text()
    assert "iter.000000/00.train: re-attaching to submission" in log
    assert "iter.000000/02.fp: 2 finished task(s) recovered from the previous submission" in log
    assert json.loads((folder / "iter.000000/02.fp" / RECORD).read_text())["salvaged"] == fp_tasks(2)
    report = json.loads((folder / "iter.000000/02.fp/fp_report.json").read_text())
    assert report["labelled"] == 3 and report["failed"] == []


def files_holding(text: str, *folders: Path) -> list[Path]:
    """Every file under ``folders`` whose bytes contain ``text``."""
    return [f for d in folders for f in d.rglob("*") if f.is_file() and not f.is_symlink()
            and text.encode() in f.read_bytes()]


def test_redo_fp_over_ssh_with_a_password_login(cu_run, cluster):  # noqa: F811
    """Slurm over SSH, logged in with a password: the password is in no file of the run
    or of the remote root.  Then iteration 0 is redone from make_fp (record lines deleted
    by hand) with new fp_params: the new labels are the new calculator's, although the
    remote root held the old task results under the same submission hash."""
    from tests.test_redo import emt_labels
    profile = cluster.password_login()
    folder = setup_run(cu_run, cluster, "slurm_ssh")
    remote = folder / "remote"
    mdata = json.loads((folder / "machine.json").read_text())
    for stage in STAGES:
        mdata[stage]["machine"]["remote_profile"] = profile
    (folder / "machine.json").write_text(json.dumps(mdata, indent=1))
    run(folder)
    assert read_record(folder) == DONE and labelled(folder) == 3
    assert files_holding(profile["password"], folder, remote) == [(folder / "machine.json")]

    lines = (folder / "record.dpgen").read_text().splitlines()
    (folder / "record.dpgen").write_text("\n".join(lines[: lines.index("0 6")]) + "\n")
    param = json.loads((folder / "param.json").read_text())
    param["fp_params"]["kwargs"] = {"asap_cutoff": True}
    write_param(folder, param)
    run(folder)
    assert read_record(folder) == DONE
    data = dpdata.LabeledSystem(str(folder / "iter.000000/02.fp/data.000"), fmt="deepmd/npy")
    np.testing.assert_allclose(data["energies"], emt_labels(data, asap_cutoff=True)[0], atol=1e-6)
    assert np.abs(data["energies"] - emt_labels(data)[0]).min() > 1e-3
    log = (folder / "dpgen.log").read_text()
    assert "iter.000000/02.fp: previous submission" in log and "discarded" in log
    assert files_holding(profile["password"], folder, remote) == [(folder / "machine.json")]


def test_slurmctld_and_sshd_restarted_during_a_run(cu_run, cluster):  # noqa: F811
    """slurmctld restarted while the training jobs run, sshd restarted (connections dropped)
    while the MD jobs run: the run finishes, every task ran once, nothing is lost."""
    folder = setup_run(cu_run, cluster, "slurm_ssh")
    proc = start(folder)

    def running(prefix: str) -> bool:
        return any(j["name"].startswith(prefix) and j["state"] == "RUNNING" for j in jobs_of(cluster, folder))

    wait_for(lambda: running("iter.000000-00.train"), proc)
    cluster.restart("slurmctld")
    wait_for(lambda: running("iter.000000-01.model_devi"), proc, timeout=300)
    cluster.restart("sshd")
    cluster.drop_ssh_connections()
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    jobs = check_quickstart(cluster, folder)
    names = Counter(j["name"] for j in jobs)
    assert set(names.values()) == {1}, names  # no job submitted twice
    assert {j["state"] for j in jobs} == {"COMPLETED"}


def fp_tasks(n: int) -> list[str]:
    """The first ``n`` fp task folders of system 0."""
    return [f"task.000.{i:06d}" for i in range(n)]


def test_a_failing_squeue_is_retried_with_back_off(cluster, tmp_path, monkeypatch, caplog):  # noqa: F811
    """``squeue`` fails twice in a row (as when slurmctld is briefly unreachable): the step
    waits, re-attaches to the same jobs, and finishes; nothing is submitted twice."""
    from dpgen_lite.dispatch import TaskSpec, run_tasks
    bin_dir, calls = tmp_path / "bin", tmp_path / "squeue_calls"
    bin_dir.mkdir()
    real = subprocess.run(["which", "squeue"], capture_output=True, text=True, check=True).stdout.strip()
    # calls 2 and 3 fail with an error dpdispatcher does not retry by itself
    (bin_dir / "squeue").write_text(
        f'#!/bin/sh\necho x >> {calls}\nn=$(wc -l < {calls})\n'
        f'if [ "$n" -eq 2 ] || [ "$n" -eq 3 ]; then echo "squeue: error: slurm_receive_msg: Zero Bytes '
        f'were transmitted or received" >&2; exit 1; fi\nexec {real} "$@"\n')
    (bin_dir / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    work = tmp_path / "run"
    tasks = []
    for i in range(3):
        (work / "step" / f"t{i}").mkdir(parents=True)
        tasks.append(TaskSpec(path=f"t{i}", command=f"sleep 2; echo {i} > out", backward_files=["out"]))
    conf = hpc_machine("slurm", cluster, tmp_path / "remote")["fp"]
    caplog.set_level("INFO", logger="dpgen_lite")
    run_tasks(conf, work, "step", tasks)
    assert [(work / "step" / f"t{i}" / "out").read_text() for i in range(3)] == ["0\n", "1\n", "2\n"]
    assert caplog.text.count("scheduler or connection error") == 2
    assert "re-attaching in 1 s (attempt 2 of 6)" in caplog.text and "re-attaching in 2 s (attempt 3 of 6)" in caplog.text
    names = Counter(j["name"] for j in cluster.queue() if j["workdir"].startswith(str(tmp_path / "remote")))
    assert sorted(names.items()) == [(f"step-t{i}", 1) for i in range(3)]


def test_a_dropped_ssh_connection_is_retried(cluster, tmp_path, caplog):  # noqa: F811
    """The SSH connection to the cluster drops while jobs run (its sshd process is killed):
    the step reconnects (dpdispatcher's session, else the back-off of run_tasks), watches
    the same jobs and collects their results; nothing is submitted twice."""
    import threading

    from dpgen_lite.dispatch import TaskSpec, run_tasks
    work = tmp_path / "run"
    tasks = []
    for i in range(2):
        (work / "step" / f"t{i}").mkdir(parents=True)
        (work / "step" / f"t{i}" / "in").write_text(str(i))
        tasks.append(TaskSpec(path=f"t{i}", command="sleep 4; cp in out", forward_files=["in"], backward_files=["out"]))
    conf = hpc_machine("slurm_ssh", cluster, tmp_path / "remote")["fp"]
    caplog.set_level("INFO", logger="dpgen_lite")
    errors: list[BaseException] = []

    def target() -> None:
        """Run the step, keeping its exception."""
        try:
            run_tasks(conf, work, "step", tasks)
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    thread = threading.Thread(target=target)
    thread.start()
    end = time.monotonic() + 60
    while time.monotonic() < end and sum(j["state"] == "RUNNING" for j in cluster.queue()
                                         if j["workdir"].startswith(str(tmp_path / "remote"))) < 2:
        time.sleep(0.2)
    assert cluster.drop_ssh_connections() >= 1
    thread.join(timeout=120)
    assert not thread.is_alive() and errors == []
    assert [(work / "step" / f"t{i}" / "out").read_text() for i in range(2)] == ["0", "1"]
    names = Counter(j["name"] for j in cluster.queue() if j["workdir"].startswith(str(tmp_path / "remote")))
    assert sorted(names.items()) == [("step-t0", 1), ("step-t1", 1)]
