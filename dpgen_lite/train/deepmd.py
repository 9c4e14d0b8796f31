"""deepmd-kit training tasks: input files with distinct seeds, the train/freeze command, reuse.

Each of the ``numb_models`` tasks trains the same network on the same data with its own
seeds, so the ensemble's spread measures the model uncertainty.  A task killed midway
restarts from its last checkpoint (``dp train --restart``), not from zero.
"""

from __future__ import annotations

import copy
import shlex
from pathlib import Path

import numpy as np

BACKENDS = {
    # backend: (dp flag, frozen model suffix, restart probe file, checkpoint prefix)
    "tensorflow": ("--tf", ".pb", "checkpoint", "model.ckpt"),
    "pytorch": ("--pt", ".pth", "model.ckpt.pt", "model.ckpt.pt"),
}


def model_suffix(backend: str) -> str:
    """File suffix of a frozen model of ``backend`` (``.pb`` or ``.pth``)."""
    return BACKENDS[backend][1]


def model_seeds(iteration: int, model_idx: int) -> tuple[int, int, int]:
    """Deterministic (descriptor, fitting, training) seeds of one ensemble member.

    Distinct across members and iterations, identical when a step is re-made after a crash.
    """
    rng = np.random.default_rng([iteration, model_idx, 20200107])
    return tuple(int(s) for s in rng.integers(1, 2**31 - 1, size=3))


def training_input(
    template: dict,
    systems: list[str],
    seeds: tuple[int, int, int],
    *,
    numb_steps: int | None = None,
    start_lr: float | None = None,
    auto_prob: str | None = None,
) -> dict:
    """A deepmd-kit ``input.json`` from ``default_training_param``.

    Parameters
    ----------
    template : ``default_training_param`` (deepmd-kit v2/v3 input, not modified)
    systems : training data folders (deepmd/npy) as seen from the task folder
    seeds : descriptor, fitting-net and training seeds
    numb_steps, start_lr, auto_prob : overrides used when reusing a previous model
    """
    jdata = copy.deepcopy(template)
    jdata["model"].setdefault("descriptor", {})["seed"] = seeds[0]
    jdata["model"].setdefault("fitting_net", {})["seed"] = seeds[1]
    training = jdata.setdefault("training", {})
    training["seed"] = seeds[2]
    data = training.setdefault("training_data", {})
    data["systems"] = systems
    data.setdefault("batch_size", "auto")
    if auto_prob is not None:
        data["auto_prob"] = auto_prob
    if numb_steps is not None:
        training["numb_steps"] = numb_steps
    if start_lr is not None:
        jdata.setdefault("learning_rate", {})["start_lr"] = start_lr
    training.pop("validation_data", None)
    return jdata


def dp_flag(backend: str) -> str:
    """The ``dp`` option selecting ``backend`` (``--tf`` or ``--pt``)."""
    return BACKENDS[backend][0]


def init_from_old(task_dir: Path, backend: str, reuse: bool) -> tuple[list[str], str | None]:
    """Files of ``task_dir/old`` (a previous model's checkpoint) to forward, and the
    ``--init-model`` path for :func:`train_command`; ``([], None)`` without ``reuse`` or files."""
    old = sorted(f"old/{f.name}" for f in (Path(task_dir) / "old").glob("*")) if reuse else []
    return old, (f"old/{BACKENDS[backend][3]}" if old else None)


def train_command(dp: str, backend: str, init_model: str | None) -> str:
    """Shell command of one training task: train (restarting from a checkpoint if one is
    there, else optionally from ``init_model``), then freeze to ``frozen_model.<suffix>``."""
    flag, suffix, probe, ckpt = BACKENDS[backend]
    dp = f"{dp} {flag}"
    init = f" --init-model {shlex.quote(init_model)}" if init_model else ""
    return (
        f"if [ -f {probe} ]; then {dp} train --restart {ckpt} input.json; "
        f"else {dp} train{init} input.json; fi && {dp} freeze -o frozen_model{suffix}"
    )


def checkpoint_files(task_dir: Path, backend: str) -> list[Path]:
    """The files of the last checkpoint in a finished training folder (to seed the next iteration)."""
    task_dir = Path(task_dir)
    if backend == "tensorflow":
        return sorted(task_dir.glob("model.ckpt.*")) + [task_dir / "checkpoint"]
    return [(task_dir / "model.ckpt.pt").resolve()]
