"""The training tasks of the loop (``iter.*/00.train``) and of the final stage (``final/0N.*``).

One layout and one task builder serve both.  A training folder holds the data, linked
(``data/sys.KKK``, ``data/h5.NNN.hdf5``) or packed (``data.hdf5``), and one task folder per
model, ``NNN`` (DP-GEN's names), with ``NNN/input.json`` and, when the model starts from
earlier ones, the files it starts from in ``NNN/old/``.

A task trains (from its own last checkpoint when it was killed), freezes to
``frozen_model.<suffix>`` and, if asked, compresses it.  Everything a later step reads
comes back from the machine, also from a remote one: the frozen (and compressed) model,
``lcurve.out``, ``train.log`` / ``train.err``, and the checkpoint (``checkpoint`` and
``model.ckpt*``, both backends) from which the next iteration, the long training or the
specialisation start.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..context import Context
from ..dispatch import TaskSpec, executable, local_python
from .deepmd import COMPRESSED, checkpoint_files, init_from_old, model_suffix, train_command

DATA = "data"
ONE_H5 = "data.hdf5"
OLD = "old"
#: the checkpoint files a training task brings back (deepmd-kit writes both with either backend)
CHECKPOINT_PATTERNS = ("checkpoint", "model.ckpt*")
#: a training task's standard output and error, brought back too
LOGS = ("train.log", "train.err")


def write_data(work: Path, systems: list[Path], one_h5: bool) -> list[str]:
    """Make the training data of ``work`` from ``systems`` (deepmd/npy folders or
    ``file.h5#/group``); return their names as seen from a task folder.

    Without ``one_h5``: a link ``data/sys.KKK`` per folder, ``data/h5.NNN.hdf5`` per HDF5
    file holding some of the systems (named ``../data/h5.NNN.hdf5#/group``).  With it: one
    ``data.hdf5`` with a group ``sys.KKK`` per system (copied through dpdata).

    Raises
    ------
    FileExistsError
        if ``work/data`` exists already.
    """
    if not one_h5:
        (work / DATA).mkdir()
        names, h5_links = [], {}
        for k, s in enumerate(systems):
            if "#" in str(s):  # a group of an HDF5 file: link the file once, name the group
                file, group = str(s).split("#", 1)
                if file not in h5_links:
                    h5_links[file] = f"h5.{len(h5_links):03d}.hdf5"
                    os.symlink(file, work / DATA / h5_links[file])
                names.append(f"../{DATA}/{h5_links[file]}#{group}")
            else:
                os.symlink(Path(s).resolve(), work / DATA / f"sys.{k:03d}")
                names.append(f"../{DATA}/sys.{k:03d}")
        return names
    import dpdata
    import h5py
    tmp = work / (ONE_H5 + ".tmp")
    with h5py.File(tmp, "w") as f:
        for k, s in enumerate(systems):
            fmt = "deepmd/hdf5" if "#" in str(s) else "deepmd/npy"
            dpdata.LabeledSystem(str(s), fmt=fmt).to("deepmd/hdf5", f.create_group(f"sys.{k:03d}"))
    tmp.rename(work / ONE_H5)
    return [f"../{ONE_H5}#/sys.{k:03d}" for k in range(len(systems))]


def data_files(one_h5: bool) -> list[str]:
    """What :func:`write_data` wrote, to forward once for all tasks of a folder."""
    return [ONE_H5] if one_h5 else [DATA]


def checkpoint_sources(task_dir: Path, backend: str) -> list[tuple[Path, str]]:
    """``(file, name in old/)`` of the last checkpoint of the finished training task
    ``task_dir`` (through links too: an iteration that reused its predecessor's models)."""
    return [(f, f.name) for f in checkpoint_files(task_dir, backend)]


def write_task(task: Path, jdata: dict, sources: list[tuple[Path, str]]) -> None:
    """Task folder ``task``: ``input.json`` (the deepmd-kit input ``jdata``) and, when
    ``sources`` is not empty, a copy ``old/<name>`` of each of its ``(file, name)``.

    Raises
    ------
    FileExistsError
        if ``task`` exists already.
    FileNotFoundError
        if a source file is missing (e.g. a checkpoint that never came back).
    """
    task.mkdir()
    (task / "input.json").write_text(json.dumps(jdata, indent=2))
    if sources:
        (task / OLD).mkdir()
        for src, name in sources:
            shutil.copy(src, task / OLD / name)


def task_folders(work: Path) -> list[Path]:
    """The task folders ``NNN`` of ``work``, sorted."""
    return sorted(d for d in work.glob("[0-9][0-9][0-9]") if d.is_dir())


def training_tasks(ctx: Context, work: Path, init_kind: str | None, compressed: str | None) -> list[TaskSpec]:
    """One dpdispatcher task per task folder of ``work`` (see the module doc), for
    :func:`..dispatch.run_tasks` with ``forward_common_files`` :func:`data_files`.

    Parameters
    ----------
    init_kind : what a fresh start begins from when ``old/`` holds files: ``checkpoint``,
        ``frozen`` or ``finetune`` (:data:`.deepmd.INIT_OPTIONS`); None: from scratch
    compressed : stem of the compressed model (``dp compress`` after the freeze), or None
        for no compression

    The ``train`` section of ``machine.json`` gives ``dp``; ``dp_train_skip_neighbor_stat``
    and ``training_finetune_model_branch`` of ``param.json`` apply.  Where ``dp`` belongs to
    this Python's environment and runs on this machine (:func:`..dispatch.local_python`), train,
    freeze and compress run in one process (:mod:`.dp_task`).
    """
    p = ctx.param
    backend = p["train_backend"]
    suffix = model_suffix(backend)
    conf = ctx.stage_conf("train")
    dp = conf["command"] or executable("dp")
    python = local_python(conf, dp)
    extra = [f"{compressed}{suffix}"] if compressed else []
    backward = [f"frozen_model{suffix}", *extra, "lcurve.out", *CHECKPOINT_PATTERNS, *LOGS]
    tasks = []
    for task in task_folders(work):
        old, init = init_from_old(task, backend, init_kind)
        command = train_command(dp, backend, init, init_kind=init_kind or "checkpoint",
                                skip_neighbor_stat=p.get("dp_train_skip_neighbor_stat", False),
                                model_branch=p.get("training_finetune_model_branch"),
                                compress=bool(compressed), compressed=compressed or COMPRESSED, python=python)
        tasks.append(TaskSpec(path=task.name, command=command, forward_files=["input.json", *old],
                              backward_files=list(backward), outlog=LOGS[0], errlog=LOGS[1]))
    return tasks
