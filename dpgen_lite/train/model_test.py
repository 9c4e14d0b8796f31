"""The models against the truth: ``dp test`` on labelled frames the models never trained on.

After every iteration's training (step 2), each model of the ensemble is tested with ``dp test``
(one dpdispatcher task per model, ``machine.json``'s ``train`` section) on the test set:

* ``test_data_sys``: the user's labelled frames (any dpdata format, ``test_data_fmt``);
* the labels held out of training so far (``02.fp/valid.*`` of the earlier iterations, kept
  with ``final_training.validation.holdout_ratio``).

``00.train/model_test.json`` then holds, per model, the energy (meV/atom), force (meV/Å) and
virial (meV/atom) RMSE, and per test frame the ensemble's largest force deviation
max_i ε_f,i (deepmd-kit's ``calc_model_devi_f``: the norm of the standard deviation of atom
i's force over the models) beside the first model's (the one driving MD) largest true force
error max_i |F_i - F_i^true|, eV/Å, with their Pearson and Spearman correlations: whether a
low deviation means a low error is what makes the trust levels mean anything.  ``dpgen.log``
gets one line per iteration; ``dpgen report`` draws both.  Without a test set nothing runs.
The final stage tests its models with the same code (:func:`dp_test`).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import dpdata
import numpy as np
from dargs import Argument

from ..context import FP, TRAIN, Context, log
from ..dispatch import TaskSpec, executable, local_python, per_core, run_tasks, runs_here
from ..params import ParamError, arg, require
from ..record import atomic_write
from .deepmd import dp_flag

TEST_REPORT = "model_test.json"
TEST_DIR = "test"


def test_args() -> list[Argument]:
    """``param.json`` keys of the test set."""
    return [
        arg("test_data_sys", list, "labelled frames the models never train on, tested after every training "
            "(paths relative to the run folder)", default=[]),
        arg("test_data_fmt", str, "dpdata format of test_data_sys (deepmd/npy, vasp/outcar, extxyz...)",
            default="deepmd/npy"),
    ]


def load_test_system(path: Path, fmt: str, type_map: list[str]) -> dpdata.LabeledSystem:
    """One ``test_data_sys`` entry.

    Raises
    ------
    ParamError
        if it is missing, unreadable as ``fmt``, empty, or holds an element outside ``type_map``.
    """
    require(path.exists(), f"test_data_sys: {path}: no such file or folder")
    try:
        system = dpdata.LabeledSystem(str(path), fmt=fmt)
    except Exception as err:  # dpdata raises whatever its format plugin raises
        raise ParamError(f"test_data_sys: {path} cannot be read as test_data_fmt = {fmt!r}: {err}") from err
    present = [e for e, n in zip(system["atom_names"], system["atom_numbs"]) if n]
    extra = sorted(set(present) - set(type_map))
    require(not extra, f"test_data_sys: {path} holds {extra}, not in type_map = {type_map}")
    require(system.get_nframes() > 0, f"test_data_sys: {path} holds no frame")
    system.apply_type_map(type_map)
    return system


def check_test_data(param: dict, base_dir: Path) -> None:
    """Every ``test_data_sys`` entry reads as ``test_data_fmt`` with ``type_map``'s elements.

    Raises
    ------
    ParamError
        naming the entry and the problem.
    """
    for entry in param["test_data_sys"]:
        load_test_system(Path(base_dir) / entry, param["test_data_fmt"], param["type_map"])


def rmse_from_detail(prefix: Path, natoms: np.ndarray) -> dict:
    """RMSEs from ``dp test -d prefix`` detail files.

    Parameters
    ----------
    natoms : (n_frames,) atoms per tested frame, in the order of ``prefix.e.out``

    Returns
    -------
    dict
        ``energy_rmse_meV_per_atom``, ``force_rmse_meV_per_A``, ``virial_rmse_meV_per_atom``
        (None when the data has no virial), ``n_frames``.
    """
    e = np.loadtxt(f"{prefix}.e.out", ndmin=2)        # data_e pred_e (eV)
    f = np.loadtxt(f"{prefix}.f.out", ndmin=2)        # data_fx..fz pred_fx..fz (eV/Å)
    out = {
        "energy_rmse_meV_per_atom": float(1e3 * np.sqrt(np.mean(((e[:, 0] - e[:, 1]) / natoms) ** 2))),
        "force_rmse_meV_per_A": float(1e3 * np.sqrt(np.mean((f[:, :3] - f[:, 3:6]) ** 2))),
        "virial_rmse_meV_per_atom": None, "n_frames": int(len(e)),
    }
    vfile = Path(f"{prefix}.v.out")
    if vfile.is_file():
        v = np.loadtxt(vfile, ndmin=2)                # data_v (9) pred_v (9) (eV)
        if np.any(v[:, :9]):
            out["virial_rmse_meV_per_atom"] = float(1e3 * np.sqrt(np.mean(((v[:, :9] - v[:, 9:18]) / natoms[:, None]) ** 2)))
    return out


def dp_test(ctx: Context, work: Path, systems: list[Path], models: dict[str, Path]) -> tuple[dict, np.ndarray]:
    """``dp test`` every model on ``systems`` (deepmd/npy folders) in ``work/<name>``, where the
    detail files stay.  One dpdispatcher task per model; where ``dp`` is this environment's and
    the tasks run in place on this machine (:func:`..dispatch.local_python`, ``LazyLocalContext``),
    one task per core instead, testing its share of the models in one process (:mod:`.dp_task`:
    one TensorFlow start-up per core, not per model).

    Returns
    -------
    (``{name: rmse_from_detail(...)}``, ``(n_frames,)`` atoms of each tested frame)
    """
    shutil.rmtree(work, ignore_errors=True)
    (work / "data").mkdir(parents=True)
    natoms = []
    for k, s in enumerate(systems):
        os.symlink(Path(s).resolve(), work / "data" / f"sys.{k:03d}")
        data = dpdata.LabeledSystem(str(s), fmt="deepmd/npy")
        natoms += [data.get_natoms()] * data.get_nframes()
    (work / "systems.txt").write_text("".join(f"../data/sys.{k:03d}\n" for k in range(len(systems))))
    conf = ctx.stage_conf("train")
    exe, flag = conf["command"] or executable("dp"), dp_flag(ctx.param["train_backend"])
    # a shared task writes into its siblings' folders: only a context that runs tasks in place sees them
    python = local_python(conf, exe) if runs_here(conf, in_place=True) else None
    names = list(models)
    for name, model in models.items():
        (work / name).mkdir()
        os.symlink(model.resolve(), work / name / ("model" + model.suffix))
    tasks = []
    for group in (per_core(names) if python else [[n] for n in names]):
        if python:
            tests = [f"{flag} test -m ../{n}/model{models[n].suffix} -f ../systems.txt -n 100000 -d ../{n}/detail"
                     for n in group]
            command = f"{python} -m dpgen_lite.train.dp_task {' --then '.join(tests)}"
        else:
            command = f"{exe} {flag} test -m model{models[group[0]].suffix} -f ../systems.txt -n 100000 -d detail"
        tasks.append(TaskSpec(path=group[0], command=command, forward_files=[f"model{models[group[0]].suffix}"],
                              backward_files=["detail.e.out", "detail.f.out", "detail.v.out"],
                              outlog="test.log", errlog="test.err"))
    run_tasks(conf, ctx.work_dir, str(work.relative_to(ctx.work_dir)), tasks,
              forward_common_files=["data", "systems.txt"])
    natoms = np.array(natoms, dtype=float)
    return {name: rmse_from_detail(work / name / "detail", natoms) for name in models}, natoms


def deviation_vs_error(work: Path, names: list[str], natoms: np.ndarray) -> dict:
    """Per tested frame, the ensemble's largest force deviation and the first model's largest
    true force error (eV/Å), from the models' ``detail.f.out`` in ``work/<name>``.

    Returns
    -------
    ``{"max_devi_f": [...], "max_error_f": [...], "pearson": r, "spearman": rho}`` (correlations
    None below 3 frames or for constant values)
    """
    from deepmd.infer.model_devi import calc_model_devi_f
    from scipy.stats import pearsonr, spearmanr

    details = [np.loadtxt(work / name / "detail.f.out", ndmin=2) for name in names]
    true_f = details[0][:, :3]
    pred = np.stack([d[:, 3:6] for d in details])  # (n_models, n_atoms_total, 3)
    bounds = np.concatenate([[0], np.cumsum(natoms.astype(int))])
    devi, error = [], []
    for a, b in zip(bounds[:-1], bounds[1:]):
        devi.append(float(calc_model_devi_f(pred[:, None, a:b])[0][0]))
        error.append(float(calc_model_devi_f(pred[:1, None, a:b], true_f[None, a:b])[0][0]))
    varied = len(devi) >= 3 and np.ptp(devi) > 0 and np.ptp(error) > 0
    return {"max_devi_f": devi, "max_error_f": error,
            "pearson": float(pearsonr(devi, error)[0]) if varied else None,
            "spearman": float(spearmanr(devi, error)[0]) if varied else None}


def test_systems(ctx: Context, iteration: int) -> list[Path]:
    """The test set of ``iteration``'s models as deepmd/npy folders: ``test_data_sys``
    (converted into ``00.train/test/user.NNN`` when not deepmd/npy) and the held-out labels of
    the earlier iterations."""
    p = ctx.param
    out = []
    for k, entry in enumerate(p.get("test_data_sys") or []):
        path = ctx.work_dir / entry
        if p["test_data_fmt"] != "deepmd/npy":
            dest = ctx.path(iteration, TRAIN) / TEST_DIR / f"user.{k:03d}"
            load_test_system(path, p["test_data_fmt"], p["type_map"]).to("deepmd/npy", str(dest))
            path = dest
        out.append(path)
    held = [t.parent for j in range(iteration) for t in sorted(ctx.path(j, FP).glob("valid.*/**/type.raw"))]
    return out + held


def reuse_test(ctx: Context, iteration: int) -> None:
    """An iteration that reuses the previous models (nothing was labelled, so the test set is the
    same): its ``model_test.json`` is the previous one's, with its own iteration number."""
    previous = ctx.path(iteration - 1, TRAIN) / TEST_REPORT
    if previous.is_file():
        report = {**json.loads(previous.read_text()), "iteration": iteration, "reused_from": iteration - 1}
        atomic_write(ctx.path(iteration, TRAIN) / TEST_REPORT, json.dumps(report, indent=1))


def test_iteration(ctx: Context, iteration: int, models: list[Path]) -> dict | None:
    """Test ``models`` (the iteration's ensemble) on the test set; write ``00.train/model_test.json``.

    Returns the report, None without a test set.
    """
    base = ctx.path(iteration, TRAIN)
    shutil.rmtree(base / TEST_DIR, ignore_errors=True)
    (base / TEST_DIR).mkdir()
    systems = test_systems(ctx, iteration)
    if not systems:
        return None
    names = {m.stem: m for m in models}
    rmse, natoms = dp_test(ctx, base / TEST_DIR / "run", systems, names)
    report = {"iteration": iteration, "systems": [os.path.relpath(s, ctx.work_dir) for s in systems],
              "n_frames": len(natoms), "models": rmse,
              "deviation": deviation_vs_error(base / TEST_DIR / "run", list(names), natoms)}
    atomic_write(base / TEST_REPORT, json.dumps(report, indent=1))
    force = [r["force_rmse_meV_per_A"] for r in rmse.values()]
    energy = [r["energy_rmse_meV_per_atom"] for r in rmse.values()]
    corr = report["deviation"]["spearman"]
    log.info("%s: test on %d frames: force RMSE %.1f meV/Å (models %.1f-%.1f), energy RMSE %.2f meV/atom; "
             "deviation vs true force error: Spearman %s", ctx.rel(iteration, TRAIN), len(natoms), np.mean(force),
             min(force), max(force), np.mean(energy), "-" if corr is None else f"{corr:.2f}")
    return report
