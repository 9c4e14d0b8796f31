"""DP-GEN's training keys: batch sizes, reuse overrides and old/new ratio, iteration-0 starts
(checkpoints, frozen model, fine-tuning), activation functions, compression, one HDF5 file.

Unit tests build ``00.train`` of a fake run folder; the ``real_*`` tests train tiny models
with deepmd-kit through ``run_train`` (dpdispatcher), as the loop does.
"""

import json
import os
import re
import shutil
from pathlib import Path

import ase.build
import dpdata
import h5py
import numpy as np
import pytest
from dargs import Argument
from deepmd.infer import DeepPot

from dpgen_lite.context import Context
from dpgen_lite.params import ParamError
from dpgen_lite.train import stage
from dpgen_lite.train.deepmd import resolve_batch_size, train_command
from dpgen_lite.train.stage import check_train, make_train, post_train, run_train, train_args
from tests.conftest import EXAMPLES, emt_frames

CU4 = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True)  # 4 atoms


def template() -> dict:
    """The quickstart's deepmd-kit input, shrunk to seconds."""
    t = json.loads((EXAMPLES / "cu_emt" / "param.json").read_text())["default_training_param"]
    t["training"].update(numb_steps=20, disp_freq=10, save_freq=20)
    t["learning_rate"]["decay_steps"] = 10
    return t


def train_param(**keys) -> dict:
    """The training keys as the schema leaves them (train_args' defaults filled), plus the
    data keys make_train reads."""
    data = {"numb_models": 2, "default_training_param": template()}
    data.update({k: v for k, v in keys.items() if k not in ("init_data_sys", "init_data_prefix")})
    schema = Argument("param", dict, sub_fields=train_args())
    param = schema.normalize_value(data)
    schema.check_value(param, strict=True)
    param.update(init_data_prefix=keys.get("init_data_prefix", ""),
                 init_data_sys=keys.get("init_data_sys", ["init", "init4"]), random_seed=keys.get("random_seed", 2020))
    return param


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """Init data (6 x 32 atoms, 3 x 4 atoms) and labels of iterations 0 (data.000: 2 x 32,
    data.001: 5 x 4 atoms) and 1 (data.000: 4 x 32 atoms)."""
    root = tmp_path_factory.mktemp("train_keys_data")
    emt_frames(6).to("deepmd/npy", str(root / "init"))
    emt_frames(3, seed=1, atoms=CU4).to("deepmd/npy", str(root / "init4"))
    emt_frames(2, seed=2).to("deepmd/npy", str(root / "iter.000000/02.fp/data.000"))
    emt_frames(5, seed=3, atoms=CU4).to("deepmd/npy", str(root / "iter.000000/02.fp/data.001"))
    emt_frames(4, seed=4).to("deepmd/npy", str(root / "iter.000001/02.fp/data.000"))
    for it in (0, 1):  # checkpoints of the previous iterations' models (contents do not matter here)
        for ii in range(2):
            task = root / f"iter.{it:06d}/00.train/{ii:03d}"
            task.mkdir(parents=True)
            for f in ("model.ckpt.index", "model.ckpt.meta", "model.ckpt.data-00000-of-00001", "checkpoint"):
                (task / f).write_text(f"{it} {ii} {f}")
    return root


def run_dir(data_dir: Path, folder: Path) -> Path:
    """A fresh run folder with ``data_dir``'s init data and labels (linked) and its
    iterations' checkpoints (copied: make_train rewrites 00.train)."""
    folder.mkdir(parents=True)
    for name in ("init", "init4"):
        os.symlink(data_dir / name, folder / name)
    for it in ("iter.000000", "iter.000001"):
        (folder / it).mkdir()
        os.symlink(data_dir / it / "02.fp", folder / it / "02.fp")
        shutil.copytree(data_dir / it / "00.train", folder / it / "00.train")
    return folder


def inputs(folder: Path, iteration: int) -> list[dict]:
    work = folder / f"iter.{iteration:06d}/00.train"
    return [json.loads((work / f"{ii:03d}/input.json").read_text()) for ii in range(2)]


def made(data_dir, tmp_path, iteration: int, **keys) -> tuple[Context, list[dict]]:
    """make_train of ``iteration`` in a fresh run folder with the training keys ``keys``."""
    folder = run_dir(data_dir, tmp_path / f"run{len(list(tmp_path.glob('run*')))}")
    ctx = Context(train_param(**keys), {}, folder)
    make_train(ctx, iteration)
    return ctx, inputs(folder, iteration)


# ---------------------------------------------------------------- batch sizes

def test_batch_size_rules():
    assert resolve_batch_size("auto", 4, 3) == 3    # DP-GEN: min(ceil(32/4) = 8, 3 frames)
    assert resolve_batch_size("auto", 4, 100) == 8
    assert resolve_batch_size("auto", 5, 100) == 7  # ceil(6.4)
    assert resolve_batch_size("auto:64", 4, 3) == 16  # deepmd-kit: ceil(64/4), not capped
    assert resolve_batch_size("auto:33", 32, 1) == 2
    assert resolve_batch_size(5, 32, 1) == 5


def test_batch_size_lists_align_with_systems(data_dir, tmp_path):
    # systems: init (32 at.), init4 (4 at., 3 fr.), it0 data.000 (32), it0 data.001 (4), it1 data.000 (32)
    _, jin = made(data_dir, tmp_path, 2, init_batch_size=[2], sys_batch_size=["auto:64", 7])
    data = jin[0]["training"]["training_data"]
    assert [os.path.basename(os.path.realpath(tmp_path / "run0/iter.000002/00.train/000" / s)) for s in data["systems"]] \
        == ["init", "init4", "data.000", "data.001", "data.000"]
    assert data["batch_size"] == [2, 3, 2, 7, 2]
    # defaults: 'auto' everywhere (the template's own batch_size is replaced, as DP-GEN)
    _, jin = made(data_dir, tmp_path, 2)
    assert jin[1]["training"]["training_data"]["batch_size"] == [1, 3, 1, 5, 1]
    # one string for the whole key
    _, jin = made(data_dir, tmp_path, 1, init_batch_size="auto:64", sys_batch_size=[4, 9])
    assert jin[0]["training"]["training_data"]["batch_size"] == [2, 16, 4, 9]
    # a 'mixed:N' template batch size is kept, as DP-GEN
    t = template()
    t["training"]["training_data"] = {"batch_size": "mixed:4"}
    _, jin = made(data_dir, tmp_path, 0, default_training_param=t, init_batch_size=[3, 3])
    assert jin[0]["training"]["training_data"]["batch_size"] == "mixed:4"


# ---------------------------------------------------------------- reuse

def test_reuse_overrides_only_from_training_reuse_iter(data_dir, tmp_path):
    reuse = dict(training_init_model=True, training_reuse_numb_steps=7, training_reuse_start_lr=1e-4,
                 training_reuse_decay_steps=3, training_reuse_start_pref_e=0.5, training_reuse_start_pref_f=50,
                 training_reuse_old_ratio=0.8)
    # training_init_model alone: start from the previous models, no overrides (as DP-GEN)
    _, jin = made(data_dir, tmp_path, 2, **reuse)
    assert jin[0]["training"]["numb_steps"] == 20 and jin[0]["learning_rate"]["start_lr"] == 0.002
    assert "auto_prob" not in jin[0]["training"]["training_data"]
    old = tmp_path / "run0/iter.000002/00.train/001/old"
    assert (old / "model.ckpt.index").read_text() == "1 1 model.ckpt.index"  # iteration 1, model 1
    assert sorted(p.name for p in old.iterdir()) == ["checkpoint", "model.ckpt.data-00000-of-00001",
                                                     "model.ckpt.index", "model.ckpt.meta"]
    # from training_reuse_iter on: every override
    _, jin = made(data_dir, tmp_path, 2, training_reuse_iter=2, **reuse)
    for j in jin:
        assert j["training"]["numb_steps"] == 7
        assert j["learning_rate"]["start_lr"] == 1e-4 and j["learning_rate"]["decay_steps"] == 3
        assert j["loss"]["start_pref_e"] == 0.5 and j["loss"]["start_pref_f"] == 50
        assert j["loss"]["limit_pref_f"] == 1  # untouched
        # old = init + iteration 0's labels (4 systems), new = iteration 1's
        assert j["training"]["training_data"]["auto_prob"] == "prob_sys_size; 0:4:0.800000; 4:5:0.200000"
    # before it: neither reuse nor overrides
    ctx, jin = made(data_dir, tmp_path, 1, training_reuse_iter=2, **{**reuse, "training_init_model": False})
    assert jin[0]["training"]["numb_steps"] == 20 and not (ctx.path(1, "00.train") / "000/old").exists()


def test_reuse_prefactors_only_where_the_template_has_them(data_dir, tmp_path):
    t = template()
    del t["loss"]["start_pref_e"]
    _, jin = made(data_dir, tmp_path, 1, default_training_param=t, training_reuse_iter=1,
                  training_reuse_start_pref_e=0.5, training_reuse_start_pref_f=50)
    assert "start_pref_e" not in jin[0]["loss"] and jin[0]["loss"]["start_pref_f"] == 50


def test_auto_old_ratio_counts_frames_of_all_but_the_last_iteration(data_dir, tmp_path):
    # old: init 6 + 3, iteration 0: 2 + 5 -> 16 frames; new: iteration 1: 4 frames
    _, jin = made(data_dir, tmp_path, 2, training_reuse_iter=1)  # default 'auto' = 'auto:10'
    r = 16 / (16 + 4 * 10)
    assert jin[0]["training"]["training_data"]["auto_prob"] == f"prob_sys_size; 0:4:{r:f}; 4:5:{1 - r:f}"
    _, jin = made(data_dir, tmp_path, 2, training_reuse_iter=1, training_reuse_old_ratio="auto:2.5")
    r = 16 / (16 + 4 * 2.5)
    assert jin[1]["training"]["training_data"]["auto_prob"] == f"prob_sys_size; 0:4:{r:f}; 4:5:{1 - r:f}"
    # iteration 1: old = init (9 frames, 2 systems), new = iteration 0 (7 frames, 2 systems)
    _, jin = made(data_dir, tmp_path, 1, training_reuse_iter=1)
    r = 9 / (9 + 7 * 10)
    assert jin[0]["training"]["training_data"]["auto_prob"] == f"prob_sys_size; 0:2:{r:f}; 2:4:{1 - r:f}"


# ---------------------------------------------------------------- iteration 0 starts, activations

def test_iteration0_starts_and_activation_functions(data_dir, tmp_path):
    models = tmp_path / "models"
    for ii in range(2):
        (models / f"m{ii}").mkdir(parents=True)
        for f in ("model.ckpt.index", "model.ckpt.meta", "model.ckpt.data-00000-of-00001", "checkpoint"):
            (models / f"m{ii}" / f).write_text(f"m{ii}")
        (models / f"f{ii}.pb").write_text(f"frozen {ii}")
    acts = ["tanh", ["gelu", "relu"]]
    ctx, jin = made(data_dir, tmp_path, 0, init_data_prefix="", training_iter0_model_path=[str(models / "m*")],
                    model_devi_activation_func=acts)
    work = ctx.path(0, "00.train")
    assert (work / "001/old/model.ckpt.meta").read_text() == "m1"
    assert [(j["model"]["descriptor"]["activation_function"], j["model"]["fitting_net"]["activation_function"])
            for j in jin] == [("tanh", "tanh"), ("gelu", "relu")]
    assert stage.init_kind(ctx, 0) == "checkpoint"
    for key, kind in (("training_init_frozen_model", "frozen"), ("training_finetune_model", "finetune")):
        ctx, _ = made(data_dir, tmp_path, 0, **{key: [str(models / "f0.pb"), str(models / "f1.pb")]})
        assert stage.init_kind(ctx, 0) == kind and stage.init_kind(ctx, 1) is None
        assert (ctx.path(0, "00.train") / "001/old/init.pb").read_text() == "frozen 1"


def captured_tasks(monkeypatch, ctx, iteration):
    seen = {}
    monkeypatch.setattr(stage, "run_tasks", lambda conf, wd, base, tasks, **kw: seen.update(tasks=tasks, **kw))
    run_train(ctx, iteration)
    return seen


def test_commands(data_dir, tmp_path, monkeypatch):
    frozen = tmp_path / "f.pb"
    frozen.write_text("x")
    ctx, _ = made(data_dir, tmp_path, 0, dp_train_skip_neighbor_stat=True, training_init_frozen_model=[str(frozen)] * 2)
    seen = captured_tasks(monkeypatch, ctx, 0)
    cmd = seen["tasks"][0].command
    # the embedded machine's dp is this environment's: train and freeze in one process (dp_task)
    assert re.search(r"-m dpgen_lite\.train\.dp_task --tf train --init-frz-model old/init\.pb --skip-neighbor-stat "
                     r"input\.json --then --tf freeze -o frozen_model\.pb;", cmd)
    assert "train --restart model.ckpt --skip-neighbor-stat input.json --then --tf freeze" in cmd
    assert seen["tasks"][0].forward_files == ["input.json", "old/init.pb"]
    assert seen["forward_common_files"] == ["data"]

    ctx, _ = made(data_dir, tmp_path, 0, dp_compress=True, training_finetune_model=[str(frozen)] * 2)
    task = captured_tasks(monkeypatch, ctx, 0)["tasks"][1]
    assert re.search(r"dp_task --tf train --finetune old/init\.pb input\.json --then --tf freeze -o frozen_model\.pb "
                     r"--then --tf compress -i frozen_model\.pb -o frozen_model_compressed\.pb; fi$", task.command)
    # a dp of another environment (or another machine): one dp process per command
    assert re.search(r"dp --tf train --finetune old/init\.pb input\.json; fi && dp --tf freeze -o frozen_model\.pb "
                     r"&& dp --tf compress -i frozen_model\.pb -o frozen_model_compressed\.pb$",
                     train_command("dp", "tensorflow", "old/init.pb", init_kind="finetune", compress=True))
    assert "frozen_model_compressed.pb" in task.backward_files

    ctx, _ = made(data_dir, tmp_path, 1, training_init_model=True)
    task = captured_tasks(monkeypatch, ctx, 1)["tasks"][0]
    assert "train --init-model old/model.ckpt input.json" in task.command and "compress" not in task.command
    assert "old/checkpoint" in task.forward_files
    # compression of a model trained without neighbor statistics takes them from input.json's data
    assert train_command("dp", "tensorflow", None, skip_neighbor_stat=True, compress=True).endswith(
        "compress -i frozen_model.pb -o frozen_model_compressed.pb -t input.json")
    assert "--model-branch b" in train_command("dp", "pytorch", "old/init.pth", init_kind="finetune", model_branch="b")


def test_one_h5(data_dir, tmp_path, monkeypatch):
    ctx, jin = made(data_dir, tmp_path, 2, one_h5=True, sys_batch_size=[3])
    work = ctx.path(2, "00.train")
    data = jin[0]["training"]["training_data"]
    assert data["systems"] == [f"../data.hdf5#/sys.{k:03d}" for k in range(5)]
    assert data["batch_size"] == [1, 3, 3, 5, 3]
    assert not (work / "data").exists()
    with h5py.File(work / "data.hdf5") as f:
        assert sorted(f) == [f"sys.{k:03d}" for k in range(5)]
        assert f["sys.003/set.000/coord.npy"].shape == (5, 12)
    assert captured_tasks(monkeypatch, ctx, 2)["forward_common_files"] == ["data.hdf5"]


def test_hdf5_systems_are_linked_by_file(data_dir, tmp_path):
    """A system given as ``file.h5#/group`` (deepmd/hdf5): the file is linked once, the
    group named; its batch size comes from the HDF5 data."""
    h5 = tmp_path / "more.hdf5"
    with h5py.File(h5, "w") as f:
        for name, n in (("a", 2), ("b", 3)):
            emt_frames(n, seed=n, atoms=CU4).to("deepmd/hdf5", f.create_group(name))
    _, jin = made(data_dir, tmp_path, 0, init_data_sys=["init", str(h5)], init_batch_size=[1, "auto"])
    data = jin[0]["training"]["training_data"]
    assert data["systems"] == ["../data/sys.000", "../data/h5.000.hdf5#/a", "../data/h5.000.hdf5#/b"]
    assert data["batch_size"] == [1, 2, 3]  # 'auto': min(ceil(32 / 4), frames)
    assert os.path.realpath(tmp_path / "run0/iter.000000/00.train/data/h5.000.hdf5") == str(h5)


def test_pytorch_checkpoint_keeps_its_name(data_dir, tmp_path, monkeypatch):
    """deepmd-kit's model.ckpt.pt links to model.ckpt-N.pt: the copy in old/ is model.ckpt.pt."""
    folder = run_dir(data_dir, tmp_path / "pt")
    for ii in range(2):
        task = folder / f"iter.000000/00.train/{ii:03d}"
        (task / "model.ckpt-20.pt").write_text(f"pt {ii}")
        os.symlink("model.ckpt-20.pt", task / "model.ckpt.pt")
    ctx = Context(train_param(train_backend="pytorch", training_init_model=True), {}, folder)
    make_train(ctx, 1)
    assert (folder / "iter.000001/00.train/001/old/model.ckpt.pt").read_text() == "pt 1"
    task = captured_tasks(monkeypatch, ctx, 1)["tasks"][1]
    assert "--pt train --init-model old/model.ckpt.pt input.json" in task.command
    assert task.forward_files == ["input.json", "old/model.ckpt.pt"]


# ---------------------------------------------------------------- checks

@pytest.mark.parametrize("keys, message", [
    ({"init_batch_size": [2, "auto:x"]}, "init_batch_size[1] = 'auto:x': allowed positive int"),
    ({"sys_batch_size": [0]}, "sys_batch_size[0] = 0: allowed positive int"),
    ({"init_batch_size": "max"}, "init_batch_size = 'max': allowed"),
    ({"training_reuse_old_ratio": 1.5}, "training_reuse_old_ratio = 1.5: a probability must lie in [0, 1]"),
    ({"training_reuse_old_ratio": "auto:-1"}, "training_reuse_old_ratio = 'auto:-1': allowed a number in [0, 1], "
                                              "'auto' or 'auto:N'"),
    ({"training_reuse_numb_steps": 0}, "training_reuse_numb_steps = 0: must be a positive number of steps"),
    ({"training_reuse_decay_steps": -3}, "training_reuse_decay_steps = -3: must be a positive"),
    ({"model_devi_activation_func": ["tanh"]}, "model_devi_activation_func = ['tanh']: 1 entries, need one per "
                                               "model, numb_models = 2"),
    ({"model_devi_activation_func": ["tanh", ["gelu", "foo"]]}, "model_devi_activation_func[1] = ['gelu', 'foo']: "
                                                               "unknown activation ['foo']; allowed"),
    ({"model_devi_activation_func": ["tanh", ["a", "b", "c"]]}, "give a name or a [descriptor, fitting] pair"),
    ({"training_iter0_model_path": ["models/m*"]}, "training_iter0_model_path = ['models/m*']: matches 3 folder(s)"),
    ({"training_iter0_model_path": ["models/m0", "models/empty"]}, "models/empty holds no complete tensorflow "
                                                                   "checkpoint"),
    ({"training_init_frozen_model": ["models/f.pb"]}, "training_init_frozen_model = ['models/f.pb']: 1 model(s), "
                                                      "need one per model, numb_models = 2"),
    ({"training_finetune_model": ["models/f.pb", "nope.pb"]}, "training_finetune_model: 'nope.pb' is not a file"),
    ({"training_finetune_model": ["models/f.pb", "models/f.pth"]}, "'models/f.pth' is not a tensorflow model (.pb)"),
    ({"training_finetune_model": ["models/f.pb"] * 2, "training_init_frozen_model": ["models/f.pb"] * 2},
     "training_init_frozen_model and training_finetune_model are both given"),
    ({"training_finetune_model_branch": "H2O"}, "training_finetune_model_branch = 'H2O': only with "
                                                "training_finetune_model and train_backend 'pytorch'"),
])
def test_check_train_errors(tmp_path, keys, message):
    for name in ("m0", "m1", "m2", "empty"):
        (tmp_path / "models" / name).mkdir(parents=True)
        if name != "empty":
            for f in ("model.ckpt.index", "model.ckpt.meta", "model.ckpt.data-00000-of-00001", "checkpoint"):
                (tmp_path / "models" / name / f).write_text("")
    (tmp_path / "models/f.pb").write_text("")
    (tmp_path / "models/f.pth").write_text("")
    param = train_param(**keys)
    with pytest.raises(ParamError) as err:
        check_train(param, tmp_path)
    assert message in str(err.value)


def test_check_train_accepts_and_warns(tmp_path, caplog):
    (tmp_path / "m0").mkdir()
    (tmp_path / "m1").mkdir()
    for d in ("m0", "m1"):
        for f in ("model.ckpt.index", "model.ckpt.meta", "model.ckpt.data-00000-of-00001", "checkpoint"):
            (tmp_path / d / f).write_text("")
    check_train(train_param(init_batch_size="auto", sys_batch_size=[1, "auto", "auto:64"], model_devi_activation_func=[
        "tanh", ["gelu_tf", "silut:3.0"]], training_iter0_model_path=["m*"], training_reuse_old_ratio="auto:5"),
        tmp_path)
    assert not caplog.records
    check_train(train_param(training_init_model=True, training_reuse_stop_batch=100), tmp_path)
    assert "training_reuse_numb_steps ignored" in caplog.text and "set training_reuse_iter" in caplog.text


# ---------------------------------------------------------------- real deepmd-kit runs

def real_template() -> dict:
    """The quickstart's network with an attention descriptor (se_atten_v2, no attention
    layer): deepmd-kit's TensorFlow backend fine-tunes only se_atten models; it compresses."""
    t = template()
    t["model"]["descriptor"] = {"type": "se_atten_v2", "sel": 60, "rcut": 5.0, "rcut_smth": 2.0,
                                "neuron": [8, 16, 32], "axis_neuron": 4, "attn": 16, "attn_layer": 0}
    return t


def real_run(folder: Path, template: dict | None = None, **keys) -> Context:
    """Iteration 0's training of 2 tiny models on 6 EMT frames: make, run (real dp), post.
    `template` is the deepmd-kit input (real_template() by default)."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "init").exists():
        emt_frames(6).to("deepmd/npy", str(folder / "init"))
    ctx = Context(train_param(default_training_param=template or real_template(), init_data_sys=["init"], **keys), {}, folder)
    check_train(ctx.param, folder)
    make_train(ctx, 0)
    run_train(ctx, 0)
    post_train(ctx, 0)
    return ctx


def forces(model: Path, folder: Path) -> np.ndarray:
    """Forces (eV/Å) of `model` on the init frames of `folder`, (n_frames, n_atoms, 3)."""
    frames = dpdata.System(str(folder / "init"), fmt="deepmd/npy")
    n = len(frames)
    out = DeepPot(str(model)).eval(frames["coords"].reshape(n, -1), frames["cells"].reshape(n, -1), frames["atom_types"])
    return out[1].reshape(n, -1, 3)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Context:
    """A fresh iteration 0 with dp_compress, one_h5 and --skip-neighbor-stat."""
    return real_run(tmp_path_factory.mktemp("pretrained"), dp_compress=True, one_h5=True,
                    dp_train_skip_neighbor_stat=True)


def test_real_compress_one_h5(pretrained):
    work = pretrained.path(0, "00.train")
    assert (work / "data.hdf5").is_file() and not (work / "data").exists()
    for ii in range(2):
        task = work / f"{ii:03d}"
        assert (task / "frozen_model.pb").is_file() and (task / "frozen_model_compressed.pb").is_file()
        assert os.readlink(work / f"graph.{ii:03d}.pb") == f"{ii:03d}/frozen_model_compressed.pb"
        log = (task / "train.log").read_text() + (task / "train.err").read_text()
        assert "data.hdf5#/sys.000" in log  # deepmd-kit read the HDF5 system


def test_real_iter0_model_path(pretrained, tmp_path):
    # one training step at a learning rate of 1e-12 leaves a model as it started: the frozen
    # model then shows where training began
    still = real_template()
    still["training"].update(numb_steps=1, disp_freq=1, save_freq=1)
    still["learning_rate"].update(start_lr=1e-12, stop_lr=1e-13, decay_steps=1)
    ctx = real_run(tmp_path / "run", still, training_iter0_model_path=[str(pretrained.path(0, "00.train") / "00[01]")])
    old = pretrained.path(0, "00.train")
    for ii in range(2):
        task = ctx.path(0, "00.train") / f"{ii:03d}"
        log = (task / "train.log").read_text() + (task / "train.err").read_text()
        assert re.search(r"initialize from model \S*/old/model\.ckpt$", log, re.M)
        f = forces(task / "frozen_model.pb", tmp_path / "run")
        # it goes on from model ii: the same forces, not those of the other model
        assert np.abs(f - forces(old / f"{ii:03d}/frozen_model.pb", tmp_path / "run")).max() < 1e-5
        assert np.abs(f - forces(old / f"{1 - ii:03d}/frozen_model.pb", tmp_path / "run")).max() > 1e-2


def test_real_finetune(pretrained, tmp_path):
    frozen = [str(pretrained.path(0, "00.train") / f"{ii:03d}/frozen_model.pb") for ii in range(2)]
    ctx = real_run(tmp_path / "run", training_finetune_model=frozen)
    for ii in range(2):
        task = ctx.path(0, "00.train") / f"{ii:03d}"
        log = (task / "train.log").read_text() + (task / "train.err").read_text()
        assert "initialize training from the frozen pretrained model" in log
        assert (task / "frozen_model.pb").is_file()
        assert os.readlink(ctx.path(0, "00.train") / f"graph.{ii:03d}.pb") == f"{ii:03d}/frozen_model.pb"


def test_random_seed_drives_model_and_velocity_seeds():
    """Same numbers and random_seed: same seeds (a redone step repeats them); another
    random_seed: other model seeds and MD velocities (an independent run)."""
    from dpgen_lite.explore.base import velocity_seed
    from dpgen_lite.train.deepmd import model_seeds

    assert model_seeds(3, 1, 2020) == model_seeds(3, 1, 2020)
    assert len({model_seeds(3, k, 2020) for k in range(4)} | {model_seeds(3, 0, 7)}) == 5
    assert velocity_seed(2, 0, 5, 2020) == velocity_seed(2, 0, 5, 2020) != velocity_seed(2, 0, 5, 7)
