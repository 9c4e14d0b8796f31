"""The only module that talks to dpdispatcher: turns a stage's tasks into a Submission and runs it.

A submission's identity (dpdispatcher's hash) depends only on the tasks, the machine and
the resources, all derived deterministically from the run's files, so a restarted
``dpgen run`` rebuilds the same submission and dpdispatcher re-attaches to its jobs
instead of submitting them again; tasks already finished are not re-run.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

STAGES = ("train", "model_devi", "fp")
#: threads per task on the embedded local machine: tasks run side by side, one per core
_SERIAL_ENVS = {
    "OMP_NUM_THREADS": "1",
    "TF_INTRA_OP_PARALLELISM_THREADS": "1",
    "TF_INTER_OP_PARALLELISM_THREADS": "1",
    "DP_INTRA_OP_PARALLELISM_THREADS": "1",
    "DP_INTER_OP_PARALLELISM_THREADS": "1",
}


def default_stage(stage: str) -> dict:
    """The embedded machine of ``stage`` used when ``machine.json`` is absent:
    dpdispatcher's Shell batch on a LazyLocal context (tasks run in place)."""
    return {
        "command": None,
        "machine": {"batch_type": "Shell", "context_type": "LazyLocalContext", "local_root": "."},
        "resources": {
            "number_node": 1, "cpu_per_node": 1, "gpu_per_node": 0, "queue_name": "",
            "group_size": 0, "envs": dict(_SERIAL_ENVS),
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
    """Run ``tasks`` through dpdispatcher and wait for them.

    Parameters
    ----------
    stage_conf : a stage section of ``machine.json`` (``machine``, ``resources``, ...)
    work_dir : the run folder (dpdispatcher's ``local_root``)
    work_base : folder of the tasks, relative to ``work_dir``
    continue_on_failure : collect every other task's results when a job fails for good

    Raises
    ------
    TaskFailures
        with ``continue_on_failure``, when some jobs failed after all retries.
    RuntimeError
        without it, as soon as a job failed after all retries (dpdispatcher's error).
    """
    if not tasks:
        return
    dpd = _import_dpdispatcher()
    mconf = copy.deepcopy(stage_conf["machine"])
    mconf["local_root"] = str(work_dir)
    if mconf.get("context_type", "").lower().startswith("lazylocal"):
        mconf["remote_root"] = str(work_dir)
    rconf = copy.deepcopy(stage_conf["resources"])
    if not rconf.get("group_size"):
        # embedded machine: one job per core, tasks of a job run one after another
        rconf["group_size"] = math.ceil(len(tasks) / (os.cpu_count() or 1))
    machine = dpd.Machine.load_from_dict(mconf)
    resources = dpd.Resources.load_from_dict(rconf)
    task_list = [
        dpd.Task(command=t.command, task_work_path=t.path, forward_files=t.forward_files,
                 backward_files=t.backward_files, outlog=t.outlog, errlog=t.errlog)
        for t in tasks
    ]
    submission = dpd.Submission(
        work_base=work_base, machine=machine, resources=resources, task_list=task_list,
        forward_common_files=list(forward_common_files),
        backward_common_files=list(backward_common_files),
    )
    log.info("%s: %d task(s) in %s", work_base, len(tasks), work_dir)
    try:
        submission.run_submission(
            check_interval=stage_conf.get("check_interval", 30),
            clean=False,
            continue_on_failure=continue_on_failure,
        )
    except RuntimeError:
        if not continue_on_failure:
            raise
        failed = [t.task_work_path for job in submission.failed_jobs() for t in job.job_task_list]
        if not failed:
            raise
        raise TaskFailures(failed) from None
    finally:
        # keep no SSH connection or thread alive after the step
        close = getattr(machine.context, "close", None)
        if close is not None:
            close()


def executable(name: str) -> str:
    """Absolute path of a console script installed beside this Python (``dp``, ``lmp``)."""
    return str(Path(sys.executable).parent / name)
