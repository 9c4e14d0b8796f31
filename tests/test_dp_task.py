"""Train, freeze and compress in one Python process (``dpgen_lite.train.dp_task``): the same
model as one ``dp`` process per command, and used only where ``dp`` is this environment's."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from deepmd.infer import DeepPot

from dpgen_lite.dispatch import default_stage, executable, local_python
from dpgen_lite.train.deepmd import train_command
from dpgen_lite.train.dp_task import split

from .conftest import EXAMPLES, THREADS, emt_frames


def test_split_on_then():
    assert split(["--tf", "train", "in.json", "--then", "--tf", "freeze"]) == [["--tf", "train", "in.json"],
                                                                            ["--tf", "freeze"]]
    with pytest.raises(ValueError, match="empty dp command"):
        split(["--tf", "train", "--then"])


def test_local_python_only_for_this_environment_on_this_machine(tmp_path):
    here = default_stage("train")
    dp = executable("dp")
    assert local_python(here, dp) == sys.executable
    other = tmp_path / "dp"  # a dp of another Python environment
    other.write_text("#!/opt/other/bin/python\nprint()\n")
    other.chmod(0o755)
    assert local_python(here, str(other)) is None
    assert local_python(here, str(tmp_path / "missing")) is None
    for machine, resources in (({"batch_type": "Slurm"}, {}), ({"context_type": "SSHContext"}, {}),
                               ({}, {"source_list": ["/opt/env.sh"]})):
        conf = {**here, "machine": {**here["machine"], **machine}, "resources": {**here["resources"], **resources}}
        assert local_python(conf, dp) is None


def test_one_process_gives_the_model_of_one_process_per_command(tmp_path):
    """The same input and seed trained (30 steps), frozen and compressed by both commands:
    identical learning curves and identical predictions of both models."""
    emt_frames(4).to("deepmd/npy", str(tmp_path / "data"))
    train = json.loads((EXAMPLES / "cu_emt" / "param.json").read_text())["default_training_param"]
    train["model"]["descriptor"]["seed"] = train["model"]["fitting_net"]["seed"] = 7
    train["training"].update(numb_steps=30, disp_freq=10, save_freq=30, seed=7,
                             training_data={"systems": ["../data"], "batch_size": 1})
    env = {**os.environ, **THREADS}
    models = {}
    for name, python in (("separate", None), ("one", sys.executable)):
        work = tmp_path / name
        work.mkdir()
        (work / "input.json").write_text(json.dumps(train))
        command = train_command(executable("dp"), "tensorflow", None, compress=True, python=python)
        assert ("dp_task" in command) == (python is not None)
        subprocess.run(["bash", "-c", command], cwd=work, check=True, env=env, capture_output=True)
        models[name] = work
    assert (models["one"] / "lcurve.out").read_text() == (models["separate"] / "lcurve.out").read_text()
    frames = emt_frames(3, seed=5)
    n = frames.get_nframes()
    for model in ("frozen_model.pb", "frozen_model_compressed.pb"):
        out = [DeepPot(str(models[k] / model)).eval(frames["coords"].reshape(n, -1), frames["cells"].reshape(n, -1),
                                                    [0] * frames.get_natoms()) for k in ("separate", "one")]
        for a, b in zip(*out):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)
