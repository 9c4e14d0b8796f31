"""After the loop: long training, compression, specialisation and the test of the final models.

Steps (recorded in ``record.dpgen`` after the loop's last iteration N as ``N 9`` .. ``N 16``):

 9 make_long_train     ``final/00.long_train/NNN``: every label (init + all iterations), virial on,
                       from scratch or (``init_from_loop``) from the loop's last models
10 run_long_train      train (from the last checkpoint if killed), freeze, ``dp compress``
11 make_special_fp     ``final/01.special_fp``: fp tasks of the special structures
12 run_special_fp      label them with the run's fp style
13 post_special_fp     ``final/01.special_fp/data.KKK`` (deepmd/npy), one per special set
14 make_special_train  ``final/02.special_train/NNN``: from the long-trained model, special sets
                       up-weighted through deepmd-kit's ``auto_prob``
15 run_special_train   train, freeze, compress
16 test_models         ``dp test`` of each final model and of the last loop model on the held-out
                       validation set: ``final/model_test.json``

Specialisation follows Wen et al., "Specialising neural network potentials for accurate
properties and application to the mechanical response of titanium", npj Comput. Mater. 7, 206
(2021): extra data sets of the target property, weighted up in the final training.

The training tasks are the loop's (:mod:`.tasks`: ``NNN/input.json``, ``NNN/old/``, the
checkpoint brought back, also from a remote machine, for the specialisation to start from;
``dp_train_skip_neighbor_stat`` applies), with the data always linked (``data/sys.KKK``,
which the manifest names) and the compressed model named ``compressed_model.<suffix>``.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
from pathlib import Path

import ase.io
import dpdata
import numpy as np
from pymatgen.analysis.elasticity.strain import DeformedStructureSet
from pymatgen.io.ase import AseAtomsAdaptor

from ..context import TRAIN, Context, log
from ..dispatch import run_tasks
from ..label.stage import collect_labels, fp_style, retry_failed, run_fp_tasks, write_fp_tasks
from ..record import atomic_write
from dargs import Argument

from ..params import ParamError, arg, normalize, require
from .deepmd import model_seeds, model_suffix, system_size, training_input
from .model_test import TEST_REPORT, dp_test
from .tasks import checkpoint_sources, data_files, training_tasks, write_data, write_task
from .stage import graphs, training_systems

FINAL = "final"
LONG, SPECIAL_FP, SPECIAL, TEST = "00.long_train", "01.special_fp", "02.special_train", "03.test"
DEFAULT_LOSS = {"start_pref_v": 0.02, "limit_pref_v": 1.0}
#: stem of a final model's compressed file (read by :func:`final_models`)
COMPRESSED_FINAL = "compressed_model"


def final_dir(ctx: Context, name: str) -> Path:
    """``work_dir/final/<name>``"""
    return ctx.work_dir / FINAL / name


def special_sets(conf: dict) -> list[dict]:
    """The ``special_sets`` entries of ``final_training`` (possibly empty)."""
    return conf.get("special_sets") or []


# ---------------------------------------------------------------- special structures

#: autotest properties whose task structures a special set may be made of
AUTOTEST_GENERATORS = ("eos", "vacancy", "interstitial", "surface", "gamma", "neb")


def generated_structures(gen: dict, base_dir: Path, type_map: list[str]) -> list[dpdata.System]:
    """Structures of a named generator, made from the equilibrium ``structure`` (a POSCAR).

    ``{"type": "elastic", "structure": "POSCAR", "norm_deform": 0.01, "shear_deform": 0.01}``:
    the 24 strained cells (±2 magnitudes of each of the 6 Voigt strains) of pymatgen's
    ``DeformedStructureSet``, as used for stress-strain fits of C_ij.  ``type`` one of
    :data:`AUTOTEST_GENERATORS`, with that Autotest property's keys (``{"type": "vacancy",
    "structure": "POSCAR", "supercell": [3, 3, 3]}``, ``{"type": "gamma", ..., "plane_miller":
    [1, 1, 1], "slip_direction": [1, 1, -2]}``): the unrelaxed starting structures of the
    property's tasks (:meth:`dpgen_lite.autotest.properties.base.Property.structures`; for ``neb``
    every interpolated band, end points included), so that the model is trained on the
    configurations Autotest computes.

    Raises
    ------
    ParamError
        for an unknown generator type, a missing structure file, or a bad key of the property.
    """
    path = base_dir / gen.get("structure", "")
    if not path.is_file():
        raise ParamError(f"final_training.special_sets generator structure = {gen.get('structure')!r}: no such file")
    kind = gen.get("type")
    if kind not in ("elastic", *AUTOTEST_GENERATORS):
        raise ParamError(f"final_training.special_sets generator type = {kind!r}: allowed "
                         f"{', '.join(repr(k) for k in ('elastic', *AUTOTEST_GENERATORS))}")
    atoms = ase.io.read(path)
    if kind == "elastic":
        norm, shear = gen.get("norm_deform", 0.01), gen.get("shear_deform", 0.01)
        deformed = DeformedStructureSet(AseAtomsAdaptor.get_structure(atoms), symmetry=False,
                                        norm_strains=[-norm, -norm / 2, norm / 2, norm],
                                        shear_strains=[-shear, -shear / 2, shear / 2, shear])
        made = [AseAtomsAdaptor.get_atoms(s) for s in deformed]
    else:
        from ..autotest.registry import PROPERTIES
        from ..autotest.schema import property_arg
        cls = PROPERTIES.get(kind)
        conf = normalize(property_arg(cls), {k: v for k, v in gen.items() if k != "structure"},
                         "final_training.special_sets generator")
        prop = cls(conf)
        prop.check(atoms)
        prop.check_files(path.parent, atoms)
        made = prop.structures(atoms, path.parent)
    return [dpdata.System(a, fmt="ase/structure", type_map=type_map) for a in made]


def special_frames(conf: dict, base_dir: Path, param: dict) -> list[tuple[int, dpdata.System, dict]]:
    """``(set index, one-frame System, source)`` for every structure of the special sets
    given as ``structures`` (glob patterns read with ``sys_format``) or a ``generator``."""
    frames = []
    for k, entry in enumerate(special_sets(conf)):
        systems = []
        for pattern in entry.get("structures") or []:
            files = sorted(glob.glob(str(base_dir / pattern)))
            if not files:
                raise ParamError(f"final_training.special_sets[{k}].structures: {pattern!r} matches no file")
            systems += [dpdata.System(f, fmt=param["sys_format"], type_map=param["type_map"]) for f in files]
        if entry.get("generator"):
            systems += generated_structures(entry["generator"], base_dir, param["type_map"])
        frames += [(k, s.sub_system([i]), {"special_set": k})
                   for s in systems for i in range(s.get_nframes())]
    return frames


def final_training_args() -> Argument:
    """Keys of the ``final_training`` section: what happens once the loop has ended."""
    special = [
        arg("data", str, "a labelled deepmd/npy folder", default=None),
        arg("structures", list, "glob patterns of structures (sys_format) to label with the fp style", default=None),
        arg("generator", dict, "structures made by a generator: {type: elastic, structure, norm_deform, "
           "shear_deform}, or an Autotest property's task structures: {type: eos | vacancy | interstitial | "
           "surface | gamma, structure, the property's keys}", default=None),
        arg("weight", float, "sampling weight of a frame of this set relative to a regular frame", default=3.0),
    ]
    validation = [
        arg("holdout_ratio", float, "share of every iteration's labels kept out of all training", default=0.0),
        arg("data", list, "deepmd/npy folders of a user-given validation set", default=[]),
    ]
    fields = [
        arg("numb_models", int, "final models (distinct seeds)", default=1),
        arg("numb_steps", int, "training steps of the long training"),
        arg("learning_rate", dict, "overrides of default_training_param's learning_rate", default=None),
        arg("loss", dict, "overrides of the loss prefactors; default turns the virial on "
           "(start_pref_v 0.02, limit_pref_v 1)", default=None),
        arg("compress", bool, "dp compress the final models", default=True),
        arg("special_sets", list, "extra weighted data sets (specialisation)", sub_fields=special, repeat=True,
           default=[]),
        arg("special_numb_steps", int, "training steps of the specialisation", default=2000),
        arg("special_start_lr", float, "start_lr of the specialisation (default: long training's / 10)",
           default=None),
        arg("init_from_loop", bool, "start the long training from the loop's last models", default=False),
        arg("validation", dict, "validation set of the model test", sub_fields=validation, default={}),
    ]
    return arg("final_training", dict, "long training, compression, specialisation, model test", sub_fields=fields,
              default=None)


def check_final(conf: dict, param: dict, base_dir: Path) -> None:
    """Cross-key checks of ``final_training``: each special set is one of data / structures /
    generator with a positive weight, data folders and structures exist.

    Raises
    ------
    ParamError
        naming the entry and the fix.
    """
    for k, entry in enumerate(special_sets(conf)):
        where = f"final_training.special_sets[{k}]"
        given = [key for key in ("data", "structures", "generator") if entry.get(key)]
        if len(given) != 1:
            raise ParamError(f"{where} = {entry}: give exactly one of 'data', 'structures', 'generator'")
        if entry["weight"] <= 0:
            raise ParamError(f"{where}.weight = {entry['weight']}: must be > 0 (3 = three times a regular frame)")
        if entry.get("data") and not (base_dir / entry["data"] / "type.raw").is_file():
            raise ParamError(f"{where}.data = {entry['data']!r}: not a deepmd/npy folder (no type.raw)")
    special_frames(conf, base_dir, param)
    require(0 <= conf["validation"]["holdout_ratio"] < 1,
            f"final_training.validation.holdout_ratio = {conf['validation']['holdout_ratio']}: must lie in [0, 1)")
    n_final = conf["numb_models"]
    require(not conf["init_from_loop"] or n_final <= param["numb_models"],
            f"final_training.numb_models = {n_final}: init_from_loop needs at most numb_models = "
            f"{param['numb_models']} (one loop model per final model)")
    for path in conf["validation"]["data"]:
        if not (base_dir / path / "type.raw").is_file():
            raise ParamError(f"final_training.validation.data: {path!r} is not a deepmd/npy folder")
    if conf["validation"]["holdout_ratio"] == 0 and not conf["validation"]["data"]:
        raise ParamError("final_training.validation: give data folders or holdout_ratio > 0 "
                         "(share of every iteration's labels kept out of training for the model test)")


# ---------------------------------------------------------------- training

def _final_input(ctx: Context, systems: list[str], seed_idx: int, numb_steps: int, auto_prob: str | None,
                 start_lr: float | None = None) -> dict:
    conf = ctx.param["final_training"]
    seeds = model_seeds(10**6, seed_idx, ctx.param["random_seed"])
    jdata = training_input(ctx.param["default_training_param"], systems, seeds, numb_steps=numb_steps,
                           auto_prob=auto_prob)
    jdata["loss"].update(conf["loss"] if conf["loss"] is not None else DEFAULT_LOSS)
    jdata["learning_rate"].update(conf["learning_rate"] or {})
    if start_lr is not None:
        jdata["learning_rate"]["start_lr"] = start_lr
    return jdata


def special_start_lr(ctx: Context) -> float:
    """``special_start_lr``, else a tenth of the long training's start_lr: the specialisation
    fine-tunes the long-trained model rather than training it anew."""
    conf = ctx.param["final_training"]
    if conf["special_start_lr"] is not None:
        return conf["special_start_lr"]
    lr = {**ctx.param["default_training_param"].get("learning_rate", {}), **(conf["learning_rate"] or {})}
    return 0.1 * lr.get("start_lr", 1e-3)


def write_train_tasks(ctx: Context, work: Path, blocks: list[tuple[list[Path], float]], numb_steps: int,
                      init_from: Path | None, start_lr: float | None = None) -> None:
    """Write ``numb_models`` training tasks (:mod:`.tasks`) on ``blocks`` of (systems,
    per-frame weight), each starting from the checkpoint of ``init_from/NNN`` if given."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    systems = [s for block, _ in blocks for s in block]
    names = write_data(work, systems, one_h5=False)  # linked: the manifest names each data folder
    bounds = np.cumsum([0] + [len(block) for block, _ in blocks])
    frames = [weight * sum(system_size(s)[1] for s in block) for block, weight in blocks]
    prob = None
    if len(blocks) > 1:  # block probability ∝ weight x frames (deepmd-kit's prob_sys_size blocks)
        prob = "prob_sys_size; " + "; ".join(f"{a}:{b}:{f / sum(frames):.6g}"
                                             for a, b, f in zip(bounds[:-1], bounds[1:], frames))
    backend = ctx.param["train_backend"]
    for ii in range(ctx.param["final_training"]["numb_models"]):
        sources = checkpoint_sources(init_from / f"{ii:03d}", backend) if init_from is not None else []
        write_task(work / f"{ii:03d}", _final_input(ctx, names, ii, numb_steps, prob, start_lr), sources)


def run_train_tasks(ctx: Context, work: Path, init: bool) -> None:
    """Train, freeze and (``compress``) compress into ``compressed_model.<suffix>`` the
    tasks of ``work``, from the checkpoints in their ``old/`` if ``init``."""
    compressed = COMPRESSED_FINAL if ctx.param["final_training"]["compress"] else None
    tasks = training_tasks(ctx, work, "checkpoint" if init else None, compressed)
    run_tasks(ctx.stage_conf("train"), ctx.work_dir, str(work.relative_to(ctx.work_dir)), tasks,
              forward_common_files=data_files(one_h5=False))


def make_long_train(ctx: Context, iteration: int) -> None:
    """Long training on every label so far (init data + all iterations' ``data.*``)."""
    systems, _ = training_systems(ctx, iteration + 1)
    conf = ctx.param["final_training"]
    init_from = ctx.path(iteration, TRAIN) if conf["init_from_loop"] else None
    write_train_tasks(ctx, final_dir(ctx, LONG), [(systems, 1.0)], conf["numb_steps"], init_from)
    log.info("final: long training of %d model(s), %d steps on %d systems%s", conf["numb_models"],
             conf["numb_steps"], len(systems), ", from the loop's last models" if init_from else "")


def run_long_train(ctx: Context, iteration: int) -> None:
    """Train, freeze and compress the long-trained models."""
    run_train_tasks(ctx, final_dir(ctx, LONG), init=ctx.param["final_training"]["init_from_loop"])


def make_special_fp(ctx: Context, iteration: int) -> None:
    """fp tasks for the special sets given as structures or generators."""
    work = final_dir(ctx, SPECIAL_FP)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    frames = special_frames(ctx.param["final_training"], ctx.work_dir, ctx.param)
    write_fp_tasks(fp_style(ctx.param, ctx.work_dir), frames, work)
    log.info("final: %d special structures to label", len(frames))


def run_special_fp(ctx: Context, iteration: int) -> None:
    """Label the special structures with the run's fp style."""
    run_fp_tasks(ctx, f"{FINAL}/{SPECIAL_FP}")


def post_special_fp(ctx: Context, iteration: int) -> None:
    """Collect the special labels into ``final/01.special_fp/data.KKK`` (K = special set); after
    a stop for too many failures, the failed tasks are first made and run again
    (:func:`.label.stage.retry_failed`)."""
    work = final_dir(ctx, SPECIAL_FP)
    if any(work.glob("task.*")):
        retry_failed(ctx, work, lambda: special_frames(ctx.param["final_training"], ctx.work_dir, ctx.param))
        collect_labels(fp_style(ctx.param, ctx.work_dir), work, ctx.param["ratio_failed"])


def special_data(ctx: Context, k: int, entry: dict) -> list[Path]:
    """deepmd/npy folders of special set ``k``: its ``data``, or its labels in ``01.special_fp``."""
    if entry.get("data"):
        return [ctx.work_dir / entry["data"]]
    return [t.parent for t in sorted(final_dir(ctx, SPECIAL_FP).glob(f"data.{k:03d}/**/type.raw"))]


def make_special_train(ctx: Context, iteration: int) -> None:
    """Retraining from the long-trained models with the special sets weighted up."""
    conf = ctx.param["final_training"]
    work = final_dir(ctx, SPECIAL)
    if not special_sets(conf):
        shutil.rmtree(work, ignore_errors=True)
        return
    systems, _ = training_systems(ctx, iteration + 1)
    blocks = [(systems, 1.0)] + [(special_data(ctx, k, e), e["weight"]) for k, e in enumerate(special_sets(conf))]
    write_train_tasks(ctx, work, blocks, conf["special_numb_steps"], init_from=final_dir(ctx, LONG),
                start_lr=special_start_lr(ctx))
    log.info("final: specialisation with %d special set(s), weights %s", len(blocks) - 1,
             [e["weight"] for e in special_sets(conf)])


def run_special_train(ctx: Context, iteration: int) -> None:
    """Train, freeze and compress the specialised models."""
    if special_sets(ctx.param["final_training"]):
        run_train_tasks(ctx, final_dir(ctx, SPECIAL), init=True)


# ---------------------------------------------------------------- model test

def final_models(ctx: Context) -> dict[str, Path]:
    """``{name: frozen model}`` of the final models: long-trained (and compressed), specialised."""
    suffix = model_suffix(ctx.param["train_backend"])
    out = {}
    for stage, kind in ((LONG, "long"), (SPECIAL, "special")):
        for task in sorted(final_dir(ctx, stage).glob("[0-9][0-9][0-9]")):
            for f, tag in ((f"frozen_model{suffix}", ""), (f"{COMPRESSED_FINAL}{suffix}", "_compressed")):
                if (task / f).is_file():
                    out[f"{kind}_{task.name}{tag}"] = task / f
    return out


def validation_systems(ctx: Context, iteration: int) -> list[Path]:
    """Held-out frames of every iteration (``02.fp/valid.*``) and the user's validation data."""
    held = [t.parent for j in range(iteration + 1) for t in sorted(ctx.path(j, "02.fp").glob("valid.*/**/type.raw"))]
    return held + [ctx.work_dir / d for d in ctx.param["final_training"]["validation"]["data"]]


def test_models(ctx: Context, iteration: int) -> dict:
    """``dp test`` every final model and the loop's last model on the validation set;
    write ``final/model_test.json`` and return it.

    Raises
    ------
    ParamError
        if the validation set is empty (too few labels held out).
    """
    valid = validation_systems(ctx, iteration)
    if not valid:
        raise ParamError("final_training.validation: the validation set is empty; raise holdout_ratio or give data")
    models = {"loop": graphs(ctx, iteration)[0], **final_models(ctx)}
    rmse, natoms = dp_test(ctx, final_dir(ctx, TEST), valid, models)
    report = {"validation_systems": [str(s) for s in valid], "n_frames": len(natoms),
              "models": {name: {"file": os.path.relpath(models[name].resolve(), ctx.work_dir), **rmse[name]}
                         for name in models}}
    atomic_write(ctx.work_dir / FINAL / TEST_REPORT, json.dumps(report, indent=1))
    for name, r in report["models"].items():
        log.info("model test %-22s energy %.2f meV/atom  force %.1f meV/Å  (%d frames)", name,
                 r["energy_rmse_meV_per_atom"], r["force_rmse_meV_per_A"], r["n_frames"])
    return report


FINAL_STEPS = (make_long_train, run_long_train, make_special_fp, run_special_fp, post_special_fp,
               make_special_train, run_special_train, test_models)
FINAL_STEP_NAMES = tuple(f.__name__ for f in FINAL_STEPS)
