"""The example machine files of ``machines/``: each validates, and the GPU node's places one
task per GPU, side by side (dpdispatcher's job script run for real on this machine)."""

import json
from pathlib import Path

import pytest

from dpgen_lite.dispatch import TaskSpec, run_tasks
from dpgen_lite.params import load_file
from dpgen_lite.schema import validate_machine

MACHINES = sorted((Path(__file__).parents[1] / "machines").glob("*.json"))


@pytest.mark.parametrize("path", MACHINES, ids=lambda p: p.name)
def test_example_machine_validates(path):
    mdata, _ = validate_machine(load_file(path), path.name)
    assert {"train", "model_devi", "fp"} <= set(mdata)


def test_gpu_node_trains_one_model_per_gpu_side_by_side(tmp_path):
    """machines/gpu_node.json's train stage on 4 tasks: one job, each task sees its own
    CUDA_VISIBLE_DEVICES (0-3), and the 4 run at once (each sleeps 2 s; all started before
    the first ended)."""
    conf = validate_machine(load_file(Path(__file__).parents[1] / "machines" / "gpu_node.json"))[0]["train"]
    conf = {**conf, "check_interval": 1}
    tasks = []
    for i in range(4):
        (tmp_path / "step" / f"{i:03d}").mkdir(parents=True)
        tasks.append(TaskSpec(path=f"{i:03d}", command='echo "$CUDA_VISIBLE_DEVICES" > gpu; date +%s.%N > start; '
                              'sleep 2; date +%s.%N > end', backward_files=["gpu", "start", "end"]))
    run_tasks(conf, tmp_path, "step", tasks)
    folders = [tmp_path / "step" / f"{i:03d}" for i in range(4)]
    assert sorted((f / "gpu").read_text().strip() for f in folders) == ["0", "1", "2", "3"]
    starts = [float((f / "start").read_text()) for f in folders]
    ends = [float((f / "end").read_text()) for f in folders]
    assert max(starts) < min(ends)
    assert len(json.loads((tmp_path / "step" / "submission.json").read_text())["submission"]["belonging_jobs"]) == 1
