"""Steps 0-2: make, run and post the training of the model ensemble (``iter.*/00.train``)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..context import FP, TRAIN, Context, log
from ..dispatch import TaskSpec, executable, run_tasks
from .deepmd import (checkpoint_files, init_from_old, model_seeds, model_suffix, train_command,
                     training_input)

DATA = "data"


def training_systems(ctx: Context, iteration: int) -> tuple[list[Path], int]:
    """Absolute deepmd/npy folders trained on at ``iteration``: init data, then every
    ``data.*`` labelled by earlier iterations.  Also returns how many are init data."""
    p = ctx.param
    init = [(ctx.work_dir / p["init_data_prefix"] / s).resolve() for s in p["init_data_sys"]]
    labelled = [t.parent for j in range(iteration) for t in sorted(ctx.path(j, FP).glob("data.*/**/type.raw"))]
    return init + labelled, len(init)


def _reuse(ctx: Context, iteration: int) -> bool:
    p = ctx.param
    if iteration == 0:
        return False
    return p["training_init_model"] or (p["training_reuse_iter"] is not None and iteration >= p["training_reuse_iter"])


def make_train(ctx: Context, iteration: int) -> None:
    """Write ``000 .. numb_models-1`` task folders with ``input.json`` (distinct seeds) and
    a ``data`` folder of links to every training system."""
    p = ctx.param
    work = ctx.path(iteration, TRAIN)
    shutil.rmtree(work, ignore_errors=True)
    (work / DATA).mkdir(parents=True)
    systems, n_init = training_systems(ctx, iteration)
    names = []
    for k, src in enumerate(systems):
        name = f"sys.{k:03d}"
        os.symlink(src, work / DATA / name)
        names.append(f"../{DATA}/{name}")
    reuse = _reuse(ctx, iteration)
    auto_prob = None
    if reuse and p["training_reuse_old_ratio"] is not None and len(systems) > n_init:
        r = p["training_reuse_old_ratio"]
        auto_prob = f"prob_sys_size; 0:{n_init}:{r}; {n_init}:{len(systems)}:{1 - r}"
    for ii in range(p["numb_models"]):
        task = work / f"{ii:03d}"
        task.mkdir()
        jdata = training_input(
            p["default_training_param"], names, model_seeds(iteration, ii),
            numb_steps=p["training_reuse_numb_steps"] if reuse else None,
            start_lr=p["training_reuse_start_lr"] if reuse else None,
            auto_prob=auto_prob,
        )
        (task / "input.json").write_text(json.dumps(jdata, indent=2))
        if reuse:
            (task / "old").mkdir()
            prev = ctx.path(iteration - 1, TRAIN) / f"{ii:03d}"
            for f in checkpoint_files(prev, p["train_backend"]):
                shutil.copy(f, task / "old" / f.name)
    log.info("%s: %d models on %d systems (%d init)", ctx.rel(iteration, TRAIN), p["numb_models"], len(systems), n_init)


def run_train(ctx: Context, iteration: int) -> None:
    """Train and freeze every model through dpdispatcher (resumes from checkpoints)."""
    p = ctx.param
    backend = p["train_backend"]
    work = ctx.path(iteration, TRAIN)
    conf = ctx.stage_conf("train")
    dp = conf["command"] or executable("dp")
    tasks = []
    for ii in range(p["numb_models"]):
        name = f"{ii:03d}"
        old, init = init_from_old(work / name, backend, _reuse(ctx, iteration))
        tasks.append(TaskSpec(
            path=name,
            command=train_command(dp, backend, init),
            forward_files=["input.json", *old],
            backward_files=[f"frozen_model{model_suffix(backend)}", "lcurve.out", "checkpoint", "model.ckpt*"],
            outlog="train.log", errlog="train.err",
        ))
    run_tasks(conf, ctx.work_dir, ctx.rel(iteration, TRAIN), tasks, forward_common_files=[DATA])


def post_train(ctx: Context, iteration: int) -> None:
    """Link each frozen model to ``00.train/graph.%03d.<suffix>``.

    Raises
    ------
    FileNotFoundError
        if a task left no frozen model.
    """
    suffix = model_suffix(ctx.param["train_backend"])
    work = ctx.path(iteration, TRAIN)
    for ii in range(ctx.param["numb_models"]):
        frozen = work / f"{ii:03d}" / f"frozen_model{suffix}"
        if not frozen.is_file():
            raise FileNotFoundError(f"{frozen}: training task left no frozen model; see {frozen.parent}/train.err")
        graph = work / f"graph.{ii:03d}{suffix}"
        graph.unlink(missing_ok=True)
        os.symlink(frozen.relative_to(work), graph)


def graphs(ctx: Context, iteration: int) -> list[Path]:
    """The frozen models of ``iteration``: ``00.train/graph.%03d.<suffix>``."""
    suffix = model_suffix(ctx.param["train_backend"])
    return [ctx.path(iteration, TRAIN) / f"graph.{ii:03d}{suffix}" for ii in range(ctx.param["numb_models"])]
