"""Steps 0-2: make, run and post the training of the model ensemble (``iter.*/00.train``).

How the models of an iteration start (DP-GEN's keys, DP-GEN's meaning unless said):

* iteration > 0 with ``training_init_model``, or from ``training_reuse_iter`` on: from the
  previous iteration's checkpoints (``old/model.ckpt*``, ``dp train --init-model``);
* iteration 0 with ``training_iter0_model_path``: from those checkpoints, the same way;
  ``training_init_frozen_model``: ``dp train --init-frz-model old/init.pb``;
  ``training_finetune_model``: ``dp train --finetune old/init.pb``;
* otherwise from scratch.

The ``training_reuse_*`` overrides (``numb_steps``, ``start_lr``, ``decay_steps``, the loss
start prefactors, the old/new ``auto_prob``) apply, as in DP-GEN, only from iteration
``training_reuse_iter`` on, and only to models that start from earlier ones.

An iteration i > 0 whose predecessor labelled too little (every ``02.fp/data.*`` of
iteration i-1 holds fewer than ``fp_task_min`` frames, or there is none) does not train: as
DP-GEN's ``_check_empty_iter`` / ``copy_model``, its ``00.train/NNN`` are links to iteration
i-1's task folders, ``graph.NNN`` links into them, and a ``copied`` marker tells run_train and
post_train to do nothing.  A later iteration starting from checkpoints reads them through
the links.

The task folders and the dpdispatcher tasks (command, files sent and brought back,
compression) are those of :mod:`.tasks`, shared with the final stage.

Deliberate differences from DP-GEN 0.14:

* ``training_iter0_model_path`` alone makes iteration 0 start from those checkpoints
  (DP-GEN links them but passes ``--init-model`` only with ``training_init_model`` or
  ``training_reuse_iter`` 0); ``training_init_model`` without it trains iteration 0 from
  scratch (DP-GEN stops with an assertion).
* The auto_prob of the old/new split is written only when both parts hold data (DP-GEN
  writes it whenever ``training_reuse_iter`` applies, and fails at iteration 0).
* ``training_init_model`` may go with ``training_init_frozen_model`` or
  ``training_finetune_model`` (iteration 0 from the frozen models, later ones from the
  previous checkpoints); DP-GEN refuses the pair.
* ``init_batch_size`` as one string applies to every entry (DP-GEN's schema allows a string
  but its code then fails); ``"auto:N"`` entries are resolved with deepmd-kit's rule (DP-GEN
  refuses them).
* With ``dp_compress`` and ``dp_train_skip_neighbor_stat``, ``dp compress -t input.json``
  takes the neighbor statistics from the data (DP-GEN's compression fails then).
* Extensions: ``training_reuse_decay_steps`` and ``training_finetune_model_branch`` (not in
  DP-GEN 0.14); ``model_devi_activation_func`` may mix names and pairs.
"""

from __future__ import annotations

import glob
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from dargs import Argument

from ..context import FP, TRAIN, Context, log
from .data import expand_system
from ..dispatch import run_tasks
from ..params import ParamError, arg, require
from .deepmd import (BACKENDS, COMPRESSED, model_seeds, model_suffix, parse_batch_size, resolve_batch_size,
                     system_size, training_input)
from .model_test import reuse_test, test_iteration
from .tasks import checkpoint_sources, data_files, training_tasks, write_data, write_task

#: marker of a ``00.train`` that reuses the previous iteration's models (DP-GEN's name)
COPIED = "copied"
#: keys that only act from ``training_reuse_iter`` on
REUSE_OVERRIDES = ("training_reuse_numb_steps", "training_reuse_start_lr", "training_reuse_decay_steps",
                   "training_reuse_start_pref_e", "training_reuse_start_pref_f")

_BATCH_DOC = ("positive int (frames per batch), 'auto' (DP-GEN: ceil(32 / natoms) frames, at most the frames "
              "of the system) or 'auto:N' (deepmd-kit: ceil(N / natoms) frames)")
_REUSE = " Only from iteration training_reuse_iter on, for models started from earlier ones (as DP-GEN)."


def train_args() -> list[Argument]:
    """DP-GEN's training keys (``mlp_engine`` ``dp``)."""
    return [
        arg("numb_models", int, "models in the ensemble (>= 2)", default=4),
        arg("default_training_param", dict, "deepmd-kit input (model, learning_rate, loss, training)"),
        arg("train_backend", str, f"one of {', '.join(BACKENDS)}", default="tensorflow"),
        arg("init_batch_size", [list, str], "batch size of each init_data_sys entry (applies to every system "
            f"under it), each a {_BATCH_DOC}; missing entries are 'auto'; one string applies to all. Overrides "
            "the template's batch_size unless that is 'mixed:N'", default=None),
        arg("sys_batch_size", [list, str], "batch size of the data labelled from each sys_configs system "
            f"(data.SSS uses entry SSS), each a {_BATCH_DOC}; missing entries are 'auto'", default=None),
        arg("training_init_model", bool, "iteration > 0: start each model from the previous iteration's "
            "checkpoint (dp train --init-model); iteration 0: from training_iter0_model_path if given",
            default=False),
        arg("training_iter0_model_path", [list, str], "glob patterns of folders holding checkpoints "
            "(model.ckpt*, and the checkpoint file with tensorflow): iteration 0's models start from them "
            "(--init-model); must match numb_models folders", default=None),
        arg("training_init_frozen_model", list, "frozen models, one per model: iteration 0 starts from them "
            "(dp train --init-frz-model)", default=None),
        arg("training_finetune_model", list, "frozen (pretrained) models, one per model: iteration 0 "
            "fine-tunes them (dp train --finetune); deepmd-kit's tensorflow backend fine-tunes only "
            "se_atten / se_atten_v2 models", default=None),
        arg("training_finetune_model_branch", str, "dpgen_lite extension (pytorch backend): the branch "
            "(--model-branch) of a multi-task pretrained model to fine-tune", default=None),
        arg("training_reuse_iter", int, "from this iteration on, start from the previous models and apply "
            "the training_reuse_* overrides", default=None),
        arg("training_reuse_numb_steps", int, "training.numb_steps when reusing." + _REUSE, default=None,
            alias=["training_reuse_stop_batch"]),
        arg("training_reuse_start_lr", [float, int], "learning_rate.start_lr when reusing." + _REUSE,
            default=None),
        arg("training_reuse_decay_steps", int, "learning_rate.decay_steps (steps) when reusing." + _REUSE
            + " Not in DP-GEN 0.14's schema", default=None),
        arg("training_reuse_start_pref_e", [float, int], "loss.start_pref_e when reusing, if the template's "
            "loss has it." + _REUSE, default=None),
        arg("training_reuse_start_pref_f", [float, int], "loss.start_pref_f when reusing, if the template's "
            "loss has it." + _REUSE, default=None),
        arg("training_reuse_old_ratio", [float, int, str], "probability of drawing a batch from the old data "
            "(init data and all iterations' labels but the last iteration's) when reusing; 'auto:N': "
            "old_frames / (old_frames + N * new_frames); 'auto' = 'auto:10'." + _REUSE, default="auto"),
        arg("dp_train_skip_neighbor_stat", bool, "add --skip-neighbor-stat to dp train (with dp_compress, "
            "dp compress then takes the statistics from input.json's data: -t input.json)", default=False),
        arg("dp_compress", bool, "dp compress each frozen model into frozen_model_compressed.<suffix>; "
            "graph.NNN links point to it", default=False),
        arg("model_devi_activation_func", list, "one per model: an activation function name for descriptor "
            "and fitting net, or a [descriptor, fitting] pair", default=None),
        arg("one_h5", bool, "pack each iteration's training data into one HDF5 file, 00.train/data.hdf5",
            default=False),
    ]


# ---------------------------------------------------------------- checks

def _batch_entries(value, n: int) -> list:
    """One batch size per entry: a list (padded with 'auto'), a string for all, None: all 'auto'."""
    if value is None:
        return ["auto"] * n
    if isinstance(value, str):
        return [value] * n
    return (list(value) + ["auto"] * n)[:n]


def iter0_model_dirs(param: dict, base_dir: Path) -> list[Path]:
    """Folders matched by ``training_iter0_model_path`` (each pattern's matches sorted)."""
    patterns = param.get("training_iter0_model_path") or []
    patterns = [patterns] if isinstance(patterns, str) else patterns
    return [Path(d) for pat in patterns for d in sorted(glob.glob(str(Path(base_dir) / pat))) if Path(d).is_dir()]


def _frozen_key(param: dict) -> str | None:
    for key in ("training_init_frozen_model", "training_finetune_model"):
        if param.get(key):
            return key
    return None


def check_train(param: dict, base_dir: Path | None = None) -> None:
    """Cross-key checks of the training keys; files relative to ``base_dir`` (default: the
    current folder, where ``dpgen run`` starts, as DP-GEN).

    Logs a warning for ``training_reuse_*`` overrides given without ``training_reuse_iter``
    (they do nothing then, as in DP-GEN).

    Raises
    ------
    ParamError
        naming the key, the value and what is allowed.
    """
    base_dir = Path.cwd() if base_dir is None else Path(base_dir)
    n_models, backend = param["numb_models"], param["train_backend"]
    require(n_models >= 2, f"numb_models = {n_models}: need >= 2 for a model deviation")
    require(backend in BACKENDS, f"train_backend = {backend!r}: allowed {', '.join(BACKENDS)}")

    for key in ("init_batch_size", "sys_batch_size"):
        value = param.get(key)
        for k, spec in ([(None, value)] if isinstance(value, str) else enumerate(value or [])):
            try:
                parse_batch_size(spec)
            except ValueError:
                where = key if k is None else f"{key}[{k}]"
                raise ParamError(f"{where} = {spec!r}: allowed {_BATCH_DOC}") from None

    for key in ("training_reuse_numb_steps", "training_reuse_decay_steps"):
        v = param.get(key)
        require(v is None or v > 0, f"{key} = {v}: must be a positive number of steps")
    v = param.get("training_reuse_start_lr")
    require(v is None or v > 0, f"training_reuse_start_lr = {v}: must be > 0")
    for key in ("training_reuse_start_pref_e", "training_reuse_start_pref_f"):
        v = param.get(key)
        require(v is None or v >= 0, f"{key} = {v}: must be >= 0")
    v = param.get("training_reuse_iter")
    require(v is None or v >= 0, f"training_reuse_iter = {v}: must be an iteration index >= 0")
    ratio = param.get("training_reuse_old_ratio", "auto")
    if ratio is None:
        pass
    elif isinstance(ratio, str):
        try:
            old_ratio_weight(ratio)
        except ValueError:
            raise ParamError(f"training_reuse_old_ratio = {ratio!r}: allowed a number in [0, 1], 'auto' or "
                             "'auto:N' (N > 0, weight of a new frame against an old one)") from None
    else:
        require(0 <= ratio <= 1, f"training_reuse_old_ratio = {ratio}: a probability must lie in [0, 1] "
                "(or give 'auto' / 'auto:N')")
    if param.get("training_reuse_iter") is None:
        given = [k for k in REUSE_OVERRIDES if param.get(k) is not None]
        if given:
            log.warning("%s ignored: as in DP-GEN, the training_reuse_* overrides apply only from iteration "
                        "training_reuse_iter on; set training_reuse_iter (e.g. 1) to use them", ", ".join(given))

    starts = [k for k in ("training_iter0_model_path", "training_init_frozen_model", "training_finetune_model")
              if param.get(k)]
    require(len(starts) <= 1, f"{' and '.join(starts)} are both given: iteration 0 starts from one of "
            "training_iter0_model_path, training_init_frozen_model, training_finetune_model")
    if param.get("training_iter0_model_path"):
        dirs = iter0_model_dirs(param, base_dir)
        require(len(dirs) == n_models, f"training_iter0_model_path = {param['training_iter0_model_path']}: "
                f"matches {len(dirs)} folder(s) under {base_dir}, need numb_models = {n_models}")
        needed = ["model.ckpt.index", "model.ckpt.data-*", "checkpoint"] if backend == "tensorflow" else ["model.ckpt.pt"]
        for d in dirs:
            missing = [n for n in needed if not any(f.is_file() for f in d.glob(n))]
            require(not missing, f"training_iter0_model_path: {d} holds no complete {backend} checkpoint "
                    f"(needs {', '.join(needed)}); missing {', '.join(missing)}")
    key = _frozen_key(param)
    if key:
        models = param[key]
        require(len(models) == n_models, f"{key} = {models}: {len(models)} model(s), need one per model, "
                f"numb_models = {n_models}")
        allowed = (".pb",) if backend == "tensorflow" else (".pth", ".pt")
        for m in models:
            require(isinstance(m, str) and (base_dir / m).is_file(), f"{key}: {m!r} is not a file under {base_dir}")
            require(Path(m).suffix in allowed, f"{key}: {m!r} is not a {backend} model ({' or '.join(allowed)})")
    branch = param.get("training_finetune_model_branch")
    require(branch is None or (backend == "pytorch" and bool(param.get("training_finetune_model"))),
            f"training_finetune_model_branch = {branch!r}: only with training_finetune_model and "
            f"train_backend 'pytorch' (dp train --model-branch)")

    acts = param.get("model_devi_activation_func")
    if acts is not None:
        require(len(acts) == n_models, f"model_devi_activation_func = {acts}: {len(acts)} entries, need one per "
                f"model, numb_models = {n_models}")
        for k, a in enumerate(acts):
            names = [a] if isinstance(a, str) else a
            require(isinstance(names, list) and len(names) in (1, 2) and all(isinstance(x, str) for x in names),
                    f"model_devi_activation_func[{k}] = {a!r}: give a name or a [descriptor, fitting] pair")
            bad = [x for x in names if not _valid_activation(x)]
            require(not bad, f"model_devi_activation_func[{k}] = {a!r}: unknown activation {bad}; allowed "
                    f"{', '.join(sorted(_activations()))}")


def _activations() -> set[str]:
    from deepmd.common import VALID_ACTIVATION
    return set(VALID_ACTIVATION) | {"custom_silu"}


def _valid_activation(name: str) -> bool:
    return name.lower().split(":")[0] in _activations()


def old_ratio_weight(value: str) -> float:
    """``N`` of ``'auto:N'`` (``'auto'``: 10), DP-GEN's new-to-old weight.

    Raises
    ------
    ValueError
        if ``value`` is not ``'auto'`` or ``'auto:N'`` with N > 0.
    """
    words = value.split(":")
    if words[0] != "auto" or len(words) > 2:
        raise ValueError(value)
    n = float(words[1]) if len(words) == 2 else 10.0
    if not n > 0:
        raise ValueError(value)
    return n


# ---------------------------------------------------------------- training data

@dataclass(frozen=True)
class TrainingSystem:
    """One system of a training set: where it is, its batch size as given, its origin."""

    path: Path
    batch_size: int | str
    iteration: int  # iteration that labelled it; -1: init data


def entry_systems(path: Path) -> list[Path]:
    """The systems under one ``init_data_sys`` entry (:func:`.data.expand_system`): a deepmd/npy
    folder, the folders below it, or ``file.h5#/group`` (deepmd/hdf5); every system of entry k
    trains with ``init_batch_size[k]``."""
    return [Path(s) for s in expand_system(path)]


def training_plan(ctx: Context, iteration: int) -> list[TrainingSystem]:
    """Every system trained on at ``iteration``: the init data (each system under entry k
    with ``init_batch_size[k]``), then each ``02.fp/data.SSS`` of earlier iterations with
    ``sys_batch_size[SSS]``."""
    p = ctx.param
    out = []
    entries = p["init_data_sys"]
    for entry, bs in zip(entries, _batch_entries(p.get("init_batch_size"), len(entries))):
        out += [TrainingSystem(s, bs, -1) for s in entry_systems((ctx.work_dir / p["init_data_prefix"] / entry).resolve())]
    sys_bs = p.get("sys_batch_size")
    for j in range(iteration):
        fp = ctx.path(j, FP)
        for t in sorted(fp.glob("data.*/**/type.raw")):
            sys_idx = int(t.relative_to(fp).parts[0].split(".")[1])
            bs = sys_bs if isinstance(sys_bs, str) else (sys_bs[sys_idx] if sys_bs and sys_idx < len(sys_bs) else "auto")
            out.append(TrainingSystem(t.parent, bs, j))
    return out


def training_systems(ctx: Context, iteration: int) -> tuple[list[Path], int]:
    """Absolute deepmd/npy folders trained on at ``iteration``: init data, then every
    ``data.*`` labelled by earlier iterations.  Also returns how many are init data."""
    plan = training_plan(ctx, iteration)
    return [s.path for s in plan], sum(s.iteration < 0 for s in plan)


def old_new_auto_prob(ratio: float | str, systems: list[TrainingSystem], nframes: list[int],
                      iteration: int) -> str | None:
    """deepmd-kit ``auto_prob`` drawing old data (all but the last iteration's labels) with
    probability ``r`` and the last iteration's labels with ``1 - r``; ``ratio`` ``'auto:N'``
    gives ``r = old / (old + N * new)`` in frames.  None when either part is empty."""
    last = [s.iteration == iteration - 1 for s in systems]
    n_old = last.index(True) if any(last) else len(systems)  # systems are in iteration order
    if n_old == 0 or n_old == len(systems):
        return None
    if isinstance(ratio, str):
        old, new = sum(nframes[:n_old]), sum(nframes[n_old:])
        ratio = old / (old + new * old_ratio_weight(ratio))
    return "prob_sys_size; 0:%d:%f; %d:%d:%f" % (n_old, ratio, n_old, len(systems), 1.0 - ratio)  # noqa: UP031


# ---------------------------------------------------------------- steps

def init_kind(ctx: Context, iteration: int) -> str | None:
    """What the models of ``iteration`` start from (see the module doc): ``checkpoint``
    (previous iteration's, or training_iter0_model_path's), ``frozen``, ``finetune``, or None."""
    p = ctx.param
    if iteration > 0:
        reuse_iter = p.get("training_reuse_iter")
        return "checkpoint" if p["training_init_model"] or (reuse_iter is not None and iteration >= reuse_iter) else None
    if p.get("training_iter0_model_path"):
        return "checkpoint"
    return {"training_init_frozen_model": "frozen", "training_finetune_model": "finetune"}.get(_frozen_key(p))


def reuse_overrides(ctx: Context, iteration: int) -> bool:
    """Whether the ``training_reuse_*`` overrides apply at ``iteration``: from
    ``training_reuse_iter`` on, for models started from checkpoints."""
    reuse_iter = ctx.param.get("training_reuse_iter")
    return reuse_iter is not None and iteration >= reuse_iter and init_kind(ctx, iteration) == "checkpoint"


def _init_sources(ctx: Context, iteration: int, kind: str | None) -> list[list[tuple[Path, str]]]:
    """Per model, the (file, name in ``old/``) it starts from."""
    p = ctx.param
    if kind is None:
        return [[] for _ in range(p["numb_models"])]
    if kind == "checkpoint":
        dirs = ([ctx.path(iteration - 1, TRAIN) / f"{ii:03d}" for ii in range(p["numb_models"])] if iteration > 0
                else iter0_model_dirs(p, ctx.work_dir))
        return [checkpoint_sources(d, p["train_backend"]) for d in dirs]
    models = [ctx.work_dir / m for m in p[_frozen_key(p)]]
    return [[(m, "init" + m.suffix)] for m in models]


# ---------------------------------------------------------------- empty iterations

def labelled_frames(fp: Path) -> dict[str, int]:
    """``{"data.SSS": frames}`` of an fp step folder ``fp``: the frames of all deepmd/npy
    systems under each ``data.*`` folder; empty when there is none (or no ``fp``)."""
    return {d.name: sum(system_size(t.parent)[1] for t in d.glob("**/type.raw")) for d in sorted(fp.glob("data.*"))}


def empty_iteration(ctx: Context, iteration: int) -> bool:
    """Whether ``iteration`` > 0 reuses the models of ``iteration - 1`` (DP-GEN's
    ``_check_empty_iter``): every ``02.fp/data.*`` of ``iteration - 1`` holds fewer than
    ``fp_task_min`` frames, or there is none."""
    if iteration == 0:
        return False
    frames = labelled_frames(ctx.path(iteration - 1, FP))
    return all(n < ctx.param.get("fp_task_min", 0) for n in frames.values())


def copied(ctx: Context, iteration: int) -> bool:
    """Whether ``00.train`` of ``iteration`` reuses the previous models (its ``copied`` marker)."""
    return (ctx.path(iteration, TRAIN) / COPIED).is_file()


def _reuse_models(ctx: Context, iteration: int) -> None:
    """``00.train`` of ``iteration`` as DP-GEN's ``copy_model``: ``NNN`` links to the previous
    iteration's task folders, ``graph.NNN`` links into them, a ``copied`` marker."""
    work = ctx.path(iteration, TRAIN)
    prev = ctx.path(iteration - 1, TRAIN)
    for ii in range(ctx.param["numb_models"]):
        os.symlink(os.path.relpath(prev / f"{ii:03d}", work), work / f"{ii:03d}")
    _link_graphs(ctx, iteration)
    (work / COPIED).touch()
    frames = labelled_frames(ctx.path(iteration - 1, FP))
    log.info("%s: no training, the models of %s are reused: %s labelled %s, fewer than fp_task_min = %d in "
             "every system", ctx.rel(iteration, TRAIN), ctx.iter_name(iteration - 1), ctx.rel(iteration - 1, FP),
             ", ".join(f"{n} frame(s) in {d}" for d, n in frames.items()) or "nothing",
             ctx.param.get("fp_task_min", 0))


# ---------------------------------------------------------------- steps

def make_train(ctx: Context, iteration: int) -> None:
    """Write ``000 .. numb_models-1`` task folders with ``input.json`` (distinct seeds) and
    the training data: ``data/sys.KKK`` links or (``one_h5``) ``data.hdf5``; the files a
    model starts from go to the task's ``old/``.  After an :func:`empty_iteration`, write
    links to the previous models instead (:func:`copied`)."""
    p = ctx.param
    work = ctx.path(iteration, TRAIN)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    if empty_iteration(ctx, iteration):
        _reuse_models(ctx, iteration)
        return
    systems = training_plan(ctx, iteration)
    sizes = [system_size(s.path) for s in systems]
    batch = [resolve_batch_size(s.batch_size, natoms, nframes) for s, (natoms, nframes) in zip(systems, sizes)]
    names = write_data(work, [s.path for s in systems], p.get("one_h5", False))
    kind = init_kind(ctx, iteration)
    reuse = reuse_overrides(ctx, iteration)
    auto_prob = None
    ratio = p.get("training_reuse_old_ratio", "auto")
    if reuse and ratio is not None:
        auto_prob = old_new_auto_prob(ratio, systems, [n for _, n in sizes], iteration)
    acts = p.get("model_devi_activation_func")
    sources = _init_sources(ctx, iteration, kind)
    for ii in range(p["numb_models"]):
        jdata = training_input(
            p["default_training_param"], names, model_seeds(iteration, ii, p["random_seed"]), batch_size=batch,
            numb_steps=p.get("training_reuse_numb_steps") if reuse else None,
            start_lr=p.get("training_reuse_start_lr") if reuse else None,
            decay_steps=p.get("training_reuse_decay_steps") if reuse else None,
            start_pref_e=p.get("training_reuse_start_pref_e") if reuse else None,
            start_pref_f=p.get("training_reuse_start_pref_f") if reuse else None,
            auto_prob=auto_prob, activation=acts[ii] if acts else None,
        )
        write_task(work / f"{ii:03d}", jdata, sources[ii])
    log.info("%s: %d models on %d systems (%d init)%s%s", ctx.rel(iteration, TRAIN), p["numb_models"], len(systems),
             sum(s.iteration < 0 for s in systems), f", starting from {kind} models" if kind else "",
             f", auto_prob {auto_prob!r}" if auto_prob else "")


def run_train(ctx: Context, iteration: int) -> None:
    """Train and freeze (and with ``dp_compress`` compress) every model through
    dpdispatcher; a killed task resumes from its checkpoint.  Nothing when the models
    are reused (:func:`copied`)."""
    if copied(ctx, iteration):
        log.info("%s: models reused from %s, nothing to train", ctx.rel(iteration, TRAIN), ctx.iter_name(iteration - 1))
        return
    p = ctx.param
    tasks = training_tasks(ctx, ctx.path(iteration, TRAIN), init_kind(ctx, iteration),
                           COMPRESSED if p.get("dp_compress", False) else None)
    run_tasks(ctx.stage_conf("train"), ctx.work_dir, ctx.rel(iteration, TRAIN), tasks,
              forward_common_files=data_files(p.get("one_h5", False)))


def _link_graphs(ctx: Context, iteration: int) -> None:
    """Link ``00.train/graph.%03d.<suffix>`` to each task's frozen model (``dp_compress``: the
    compressed one).

    Raises
    ------
    FileNotFoundError
        if a task has no such model.
    """
    suffix = model_suffix(ctx.param["train_backend"])
    name = f"{COMPRESSED}{suffix}" if ctx.param.get("dp_compress", False) else f"frozen_model{suffix}"
    work = ctx.path(iteration, TRAIN)
    for ii in range(ctx.param["numb_models"]):
        frozen = work / f"{ii:03d}" / name
        if not frozen.is_file():
            raise FileNotFoundError(f"{frozen}: training task left no {name}; see {frozen.parent}/train.err")
        graph = work / f"graph.{ii:03d}{suffix}"
        graph.unlink(missing_ok=True)
        os.symlink(frozen.relative_to(work), graph)


def post_train(ctx: Context, iteration: int) -> None:
    """Link each frozen model (``dp_compress``: the compressed one) to
    ``00.train/graph.%03d.<suffix>`` and test them on the test set (:mod:`.model_test`);
    nothing when the models are reused (:func:`copied`: the links are there).

    Raises
    ------
    FileNotFoundError
        if a task left no frozen model.
    """
    if copied(ctx, iteration):
        log.info("%s: models reused from %s, nothing to collect", ctx.rel(iteration, TRAIN),
                 ctx.iter_name(iteration - 1))
        reuse_test(ctx, iteration)
        return
    _link_graphs(ctx, iteration)
    test_iteration(ctx, iteration, graphs(ctx, iteration))


def graphs(ctx: Context, iteration: int) -> list[Path]:
    """The frozen models of ``iteration``: ``00.train/graph.%03d.<suffix>`` (links, through
    the previous iteration's task folders when it reused them)."""
    suffix = model_suffix(ctx.param["train_backend"])
    return [ctx.path(iteration, TRAIN) / f"graph.{ii:03d}{suffix}" for ii in range(ctx.param["numb_models"])]
