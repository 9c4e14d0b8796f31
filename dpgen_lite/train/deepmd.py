"""deepmd-kit training tasks: input files with distinct seeds, the train/freeze command, reuse.

Each of the ``numb_models`` tasks trains the same network on the same data with its own
seeds, so the ensemble's spread measures the model uncertainty.  A task killed midway
restarts from its last checkpoint (``dp train --restart``), not from zero.
"""

from __future__ import annotations

import copy
import math
import shlex
from pathlib import Path

import numpy as np

BACKENDS = {
    # backend: (dp flag, frozen model suffix, restart probe file, checkpoint prefix)
    "tensorflow": ("--tf", ".pb", "checkpoint", "model.ckpt"),
    "pytorch": ("--pt", ".pth", "model.ckpt.pt", "model.ckpt.pt"),
}

#: how a task starts when it has no checkpoint of its own: ``dp train`` option per kind
INIT_OPTIONS = {"checkpoint": "--init-model", "frozen": "--init-frz-model", "finetune": "--finetune"}

#: stem of a loop model's compressed file (DP-GEN's name; ``graph.NNN`` links to it)
COMPRESSED = "frozen_model_compressed"

#: DP-GEN's ``auto`` batch size: ``ceil(AUTO_BATCH_ATOMS / natoms)`` frames, at most the frames there are
AUTO_BATCH_ATOMS = 32


#: the torch that deepmd-kit 3.2.0's compiled ops (``libdeepmd_op_pt.so``) were built against
TORCH_VERSION = "2.11.0"


def check_backend_installed(backend: str) -> None:
    """The ``pytorch`` backend needs torch :data:`TORCH_VERSION` beside deepmd-kit (another
    version cannot load deepmd-kit's ops; the tensorflow backend comes with deepmd-kit[cpu]).

    Raises
    ------
    ParamError
        naming the installed version and the install line.
    """
    if backend != "pytorch":
        return
    from importlib import metadata

    from ..params import ParamError
    try:
        found = metadata.version("torch")
    except metadata.PackageNotFoundError:
        found = None
    if found is None or found.split("+")[0] != TORCH_VERSION:
        raise ParamError(f"train_backend = 'pytorch': needs torch {TORCH_VERSION} (deepmd-kit's compiled ops), "
                         f"found {found or 'none'}; install it with `pip install -e '.[pt]'` in dpgen_lite's folder "
                         f"(= pip install 'deepmd-kit[torch]==3.2.0'), or give machine.json's train.command "
                         "for a machine that has it")


def model_suffix(backend: str) -> str:
    """File suffix of a frozen model of ``backend`` (``.pb`` or ``.pth``)."""
    return BACKENDS[backend][1]


def model_seeds(iteration: int, model_idx: int, run_seed: int) -> tuple[int, int, int]:
    """Deterministic (descriptor, fitting, training) seeds of one ensemble member.

    Distinct across members, iterations and runs of another ``random_seed`` (``run_seed``),
    identical when a step is re-made after a crash.
    """
    rng = np.random.default_rng([iteration, model_idx, 20200107, run_seed])
    return tuple(int(s) for s in rng.integers(1, 2**31 - 1, size=3))


def parse_batch_size(spec) -> tuple[str, int]:
    """``(kind, n)`` of one DP-GEN batch size: an int ``n`` -> ``("int", n)``, ``"auto"`` ->
    ``("auto", 32)``, ``"auto:N"`` -> ``("auto:", N)``.

    Raises
    ------
    ValueError
        for anything else (a positive int, "auto" or "auto:N" with N a positive int is allowed).
    """
    if isinstance(spec, int) and not isinstance(spec, bool) and spec > 0:
        return "int", spec
    if spec == "auto":
        return "auto", AUTO_BATCH_ATOMS
    if isinstance(spec, str) and spec.startswith("auto:"):
        n = spec[5:]
        if n.isdigit() and int(n) > 0:
            return "auto:", int(n)
    raise ValueError(f"{spec!r}: allowed a positive int, 'auto' or 'auto:N' (N a positive int)")


def resolve_batch_size(spec, natoms: int, nframes: int) -> int:
    """Frames per batch of one system of ``natoms`` atoms and ``nframes`` frames.

    ``"auto"`` is DP-GEN's rule ``min(ceil(32 / natoms), nframes)``; ``"auto:N"`` is
    deepmd-kit's own ``ceil(N / natoms)`` (no cap by the frames); an int is kept.
    """
    kind, n = parse_batch_size(spec)
    if kind == "int":
        return n
    bs = math.ceil(n / natoms)
    return min(bs, nframes) if kind == "auto" else bs


def system_size(system: str | Path) -> tuple[int, int]:
    """``(natoms, nframes)`` of a deepmd/npy folder, or of ``file.h5#/group`` (deepmd/hdf5)."""
    system = str(system)
    if "#" in system:
        import dpdata
        s = dpdata.LabeledSystem(system, fmt="deepmd/hdf5")
        return s.get_natoms(), s.get_nframes()
    path = Path(system)
    natoms = len((path / "type.raw").read_text().split())
    nframes = sum(np.load(c, mmap_mode="r").shape[0] for c in path.glob("set.*/coord.npy"))
    return natoms, nframes


def set_activation(jdata: dict, activation: str | list[str]) -> None:
    """Set the activation function of the descriptor and fitting net: one name for both,
    or a ``[descriptor, fitting]`` pair (``model_devi_activation_func``'s entries)."""
    desc, fit = (activation, activation) if isinstance(activation, str) else activation
    jdata["model"].setdefault("descriptor", {})["activation_function"] = desc
    jdata["model"].setdefault("fitting_net", {})["activation_function"] = fit


def training_input(
    template: dict,
    systems: list[str],
    seeds: tuple[int, int, int],
    *,
    numb_steps: int | None = None,
    start_lr: float | None = None,
    auto_prob: str | None = None,
    batch_size: list[int] | None = None,
    decay_steps: int | None = None,
    start_pref_e: float | None = None,
    start_pref_f: float | None = None,
    activation: str | list[str] | None = None,
) -> dict:
    """A deepmd-kit ``input.json`` from ``default_training_param``.

    Parameters
    ----------
    template : ``default_training_param`` (deepmd-kit v2/v3 input, not modified)
    systems : training data folders (deepmd/npy, or ``file.h5#/group``) as seen from the task folder
    seeds : descriptor, fitting-net and training seeds
    batch_size : frames per batch of each of ``systems``; the template's own batch size is kept
        when None or when it is deepmd-kit's ``"mixed:N"`` (as DP-GEN)
    numb_steps, start_lr, decay_steps, auto_prob : overrides used when reusing a previous model
    start_pref_e, start_pref_f : loss start prefactors when reusing; set only if the
        template's loss has that key (as DP-GEN)
    activation : activation function(s) of this ensemble member, see :func:`set_activation`
    """
    jdata = copy.deepcopy(template)
    jdata["model"].setdefault("descriptor", {})["seed"] = seeds[0]
    jdata["model"].setdefault("fitting_net", {})["seed"] = seeds[1]
    training = jdata.setdefault("training", {})
    training["seed"] = seeds[2]
    data = training.setdefault("training_data", {})
    data["systems"] = systems
    old = data.get("batch_size")
    if batch_size is not None and not (isinstance(old, str) and old.startswith("mixed:")):
        data["batch_size"] = list(batch_size)
    data.setdefault("batch_size", "auto")
    if auto_prob is not None:
        data["auto_prob"] = auto_prob
    if numb_steps is not None:  # deepmd-kit's alias stop_batch, if the template uses it (as DP-GEN)
        training["stop_batch" if "stop_batch" in training and "numb_steps" not in training else "numb_steps"] = numb_steps
    lr = jdata.setdefault("learning_rate", {})
    if start_lr is not None:
        lr["start_lr"] = start_lr
    if decay_steps is not None:
        lr["decay_steps"] = decay_steps
    loss = jdata.get("loss") or {}
    for key, value in (("start_pref_e", start_pref_e), ("start_pref_f", start_pref_f)):
        if value is not None and loss.get(key) is not None:
            loss[key] = value
    if activation is not None:
        set_activation(jdata, activation)
    training.pop("validation_data", None)
    return jdata


def dp_flag(backend: str) -> str:
    """The ``dp`` option selecting ``backend`` (``--tf`` or ``--pt``)."""
    return BACKENDS[backend][0]


def init_from_old(task_dir: Path, backend: str, kind: str | None) -> tuple[list[str], str | None]:
    """Files of ``task_dir/old`` (what the model starts from) to forward, and the model
    :func:`train_command` starts a fresh training from: ``old/model.ckpt`` (tensorflow) or
    ``old/model.ckpt.pt`` (pytorch) for ``kind`` ``checkpoint``, the one frozen model in
    ``old/`` for ``frozen`` and ``finetune``; ``([], None)`` for ``kind`` None or no files."""
    old = sorted(f"old/{f.name}" for f in (Path(task_dir) / "old").glob("*")) if kind else []
    if not old:
        return [], None
    return old, (f"old/{BACKENDS[backend][3]}" if kind == "checkpoint" else old[0])


def compress_args(backend: str, src: str, dst: str, training_script: str | None = None) -> str:
    """``dp`` arguments of the compression of the frozen model ``src`` into ``dst`` (tabulated
    embedding nets).

    ``training_script``: the model's ``input.json``, whose data give the neighbor statistics
    that a model trained with ``--skip-neighbor-stat`` lacks (deepmd-kit refuses it otherwise).
    """
    script = f" -t {shlex.quote(training_script)}" if training_script else ""
    return f"{dp_flag(backend)} compress -i {shlex.quote(src)} -o {shlex.quote(dst)}{script}"


def train_command(
    dp: str,
    backend: str,
    init_model: str | None,
    *,
    init_kind: str = "checkpoint",
    skip_neighbor_stat: bool = False,
    model_branch: str | None = None,
    compress: bool = False,
    compressed: str = COMPRESSED,
    python: str | None = None,
) -> str:
    """Shell command of one training task: train (restarting from a checkpoint if one is
    there, else optionally from ``init_model``), then freeze to ``frozen_model.<suffix>``.

    Parameters
    ----------
    init_model : what a fresh start begins from (relative to the task), or None: from scratch
    init_kind : what ``init_model`` is, a key of :data:`INIT_OPTIONS`: ``checkpoint``
        (``--init-model``), ``frozen`` (``--init-frz-model``), ``finetune`` (``--finetune``)
    skip_neighbor_stat : add ``--skip-neighbor-stat`` to ``dp train``
    model_branch : ``--model-branch`` of a fine-tuning from a multi-task model (PyTorch)
    compress : then ``dp compress`` into ``<compressed>.<suffix>`` (with
        ``skip_neighbor_stat``, from the statistics of ``input.json``'s data)
    compressed : stem of the compressed model
    python : the Python of ``dp``'s environment: the ``dp`` commands then run in one process of
        it (:mod:`.dp_task`) instead of one ``dp`` process each; None: ``dp`` per command
    """
    flag, suffix, probe, ckpt = BACKENDS[backend]
    extra = " --skip-neighbor-stat" if skip_neighbor_stat else ""
    init = ""
    if init_model:
        init = f" {INIT_OPTIONS[init_kind]} {shlex.quote(init_model)}"
        if init_kind == "finetune" and model_branch:
            init += f" --model-branch {shlex.quote(model_branch)}"
    after = [f"{flag} freeze -o frozen_model{suffix}"]
    if compress:
        after.append(compress_args(backend, f"frozen_model{suffix}", f"{compressed}{suffix}",
                                   "input.json" if skip_neighbor_stat else None))
    restart, fresh = f"{flag} train --restart {ckpt}{extra} input.json", f"{flag} train{init}{extra} input.json"
    if python:
        run, tail = f"{python} -m dpgen_lite.train.dp_task", "".join(" --then " + a for a in after)
        return f"if [ -f {probe} ]; then {run} {restart}{tail}; else {run} {fresh}{tail}; fi"
    return f"if [ -f {probe} ]; then {dp} {restart}; else {dp} {fresh}; fi" + "".join(f" && {dp} {a}" for a in after)


def checkpoint_files(task_dir: Path, backend: str) -> list[Path]:
    """The files of the last checkpoint in a finished training folder (to seed the next iteration)."""
    task_dir = Path(task_dir)
    if backend == "tensorflow":
        return sorted(task_dir.glob("model.ckpt.*")) + [task_dir / "checkpoint"]
    return [task_dir / "model.ckpt.pt"]  # a link to model.ckpt-N.pt: copies keep this name
