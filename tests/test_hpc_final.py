"""The final stage (long training, specialisation, model test) with every training task on
Slurm over SSH: the long-trained checkpoints come back from the remote root, and the
specialisation starts from them.  The cluster is the session fixture of ``tests/hpc.py``."""

import json
import re
from pathlib import Path

from dpgen_lite.record import read_record
from dpgen_lite.train.deepmd import checkpoint_files
from tests.conftest import emt_frames, write_param
from tests.hpc import cluster  # noqa: F401  (session fixture)
from tests.test_final import with_final
from tests.test_hpc import hpc_machine, jobs_of, run

CHECKPOINT = {"checkpoint", "model.ckpt.index", "model.ckpt.meta", "model.ckpt.data-00000-of-00001"}
FINAL_MODELS = {"long_000", "long_000_compressed", "special_000", "special_000_compressed"}


def final_run(cu_run, cluster) -> Path:  # noqa: F811
    """A run without exploration (iteration 0 trains, then the loop ends) and a tiny final
    stage: 20 steps of long training from the loop's models, 10 of specialisation on a
    given labelled set, the test on a given validation set.  Only the train stage (every
    training and model test) goes to the cluster."""
    folder, base = cu_run
    emt_frames(2, seed=7).to("deepmd/npy", str(folder / "special"))
    emt_frames(2, seed=8).to("deepmd/npy", str(folder / "valid"))
    param = with_final(base, folder, numb_steps=20, special=False)
    param["model_devi_jobs"] = []
    param["final_training"].update(special_sets=[{"data": "special", "weight": 4.0}], special_numb_steps=10,
                                   init_from_loop=True, validation={"data": ["valid"]})
    write_param(folder, param)
    mdata = hpc_machine("slurm_ssh", cluster, folder / "remote")
    (folder / "machine.json").write_text(json.dumps({"train": mdata["train"]}, indent=1))
    return folder


def test_final_stage_on_slurm_over_ssh(cu_run, cluster):  # noqa: F811
    folder = final_run(cu_run, cluster)
    run(folder, timeout=400)
    assert read_record(folder) == [(0, s) for s in (0, 1, 2, *range(9, 17))]
    names = {j["name"] for j in jobs_of(cluster, folder)}
    assert {"iter.000000-00.train-000", "final-00.long_train-000", "final-02.special_train-000",
            "final-03.test-special_000"} <= names

    # each training started from the checkpoint before it, as it came back from the remote root
    for before, task in (("iter.000000/00.train/000", "final/00.long_train/000"),
                         ("final/00.long_train/000", "final/02.special_train/000")):
        checkpoint = checkpoint_files(folder / before, "tensorflow")
        assert {f.name for f in checkpoint} == CHECKPOINT
        assert all(f.is_file() and not f.is_symlink() for f in checkpoint)  # files, not links to the remote
        assert {f.name: f.read_bytes() for f in (folder / task / "old").iterdir()} == \
            {f.name: f.read_bytes() for f in checkpoint}
        log = (folder / task / "train.log").read_text() + (folder / task / "train.err").read_text()
        assert re.search(r"initialize from model \S*/old/model\.ckpt$", log, re.M)
    assert (folder / "final/02.special_train/000/compressed_model.pb").is_file()

    manifest = json.loads((folder / "models/manifest.json").read_text())
    assert set(manifest["final"]) == FINAL_MODELS
    assert all((folder / "models" / m["file"]).is_file() for m in manifest["final"].values())
    assert manifest["final"]["special_000"]["numb_steps"] == 10
    assert manifest["final"]["special_000"]["data"][-1] == "special"
