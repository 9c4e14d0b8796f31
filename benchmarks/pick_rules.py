"""Cost of a pick: each fp_pick rule choosing 30 of N candidates, descriptors included.

    .venv/bin/python benchmarks/pick_rules.py [--candidates 10000] [--tasks 10] [--model graph.pb]

Writes ``--tasks`` trajectories of 32-atom fcc Cu frames (rattled by 0.1 Å) in the ase engine's
format (``traj.traj`` with a matching ``model_devi.out``), N candidates in all, then times, in
this process, :func:`dpgen_lite.select.stage.candidate_data` and each rule's pick of 30 frames:
deviations re-read from the files, descriptors from deepmd-kit's ``DeepPot.eval_descriptor``
(256 frames a batch) of ``--model`` (default: a model of the quickstart's network trained 20
steps here: the cost does not depend on the training).  Prints seconds and candidates per
second per rule, and the peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import ase.build
import numpy as np
from ase.io.trajectory import Trajectory

from dpgen_lite.dispatch import executable
from dpgen_lite.explore.ase_md import AseEngine
from dpgen_lite.explore.ase_md_runner import HEADER
from dpgen_lite.select.model_devi import TrustLevels
from dpgen_lite.select.rules.base import pick_rule
from dpgen_lite.select.stage import SystemFrames, candidate_data

ROOT = Path(__file__).resolve().parents[1]


def train_model(folder: Path) -> Path:
    """A quickstart-network model of Cu, 20 steps on 5 EMT frames (``dp --tf train/freeze``)."""
    from train_task import frames

    frames(5).to("deepmd/npy", str(folder / "data"))
    train = json.loads((ROOT / "examples" / "cu_emt" / "param.json").read_text())["default_training_param"]
    train["training"].update(numb_steps=20, disp_freq=10, save_freq=20, training_data={"systems": ["data"],
                                                                                       "batch_size": 1})
    (folder / "input.json").write_text(json.dumps(train))
    for args in (["train", "input.json"], ["freeze", "-o", "graph.pb"]):
        subprocess.run([executable("dp"), "--tf", *args], cwd=folder, check=True, capture_output=True)
    return folder / "graph.pb"


def write_tasks(folder: Path, n_tasks: int, per_task: int) -> list[Path]:
    """Trajectories and deviation files of ``n_tasks`` tasks, ``per_task`` frames each."""
    rng = np.random.default_rng(0)
    base = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    tasks = []
    for t in range(n_tasks):
        task = folder / f"task.000.{t:06d}"
        task.mkdir(parents=True)
        with Trajectory(str(task / "traj.traj"), "w") as traj:
            for _ in range(per_task):
                atoms = base.copy()
                atoms.positions += rng.normal(scale=0.1, size=atoms.positions.shape)
                traj.write(atoms)
        devi = np.zeros((per_task, 7))
        devi[:, 0] = 10 * np.arange(per_task)
        devi[:, 4] = rng.uniform(0.1, 0.3, per_task)
        np.savetxt(task / "model_devi.out", devi, fmt=["%12d"] + ["%19.6e"] * 6, header=HEADER[1:], comments="#")
        tasks.append(task)
    return tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=10000)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--model")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="pick-"))
    model = Path(args.model) if args.model else train_model(folder)
    per_task = args.candidates // args.tasks
    tasks = write_tasks(folder / "md", args.tasks, per_task)
    cands = np.array([[t, 10 * r, r] for t in range(args.tasks) for r in range(per_task)], dtype=np.int64)
    frames = SystemFrames([t.name for t in tasks], np.zeros(3), cands, TrustLevels(0.1, 0.3, None, None))
    md = AseEngine({})
    print(f"{len(cands)} candidates in {args.tasks} tasks, 32 atoms each; pick 30")
    for name, settings in (("random", {}), ("max_devi", {}), ("fps", {"stop_ratio": 0.0})):
        data = candidate_data(md, tasks, frames, lambda: model, ["Cu"])
        start = time.perf_counter()
        chosen, _ = pick_rule({"fp_pick": {"rule": name, **settings}}).pick(cands, 30, 0, data)
        wall = time.perf_counter() - start
        assert len(chosen) == 30
        print(f"{name:9s} {wall:8.2f} s  {len(cands) / wall:12.0f} candidates/s")
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
