"""Exploration engines: the programs that run the model-deviation MD.

An engine promises the rest of the loop four things, and nothing else of it is seen outside
this package:

* **tasks**: :meth:`Engine.task_inputs` gives, per starting configuration, the input files of
  its tasks (one per condition: temperature, pressure, template revision...), and
  :meth:`Engine.write_conf` writes the configuration in the engine's format.  The stage
  (:mod:`.stage`) numbers the folders ``task.<sys_idx %03d>.<counter %06d>`` as DP-GEN does;
* **the dispatch spec**: :meth:`Engine.task_spec`, one dpdispatcher task per folder, whose
  program error ends the task (not the job) and leaves its exit code in :attr:`Engine.exit_file`;
* **the deviations**: every task writes deepmd-kit's ``model_devi.out`` (7 columns: step,
  max/min/avg virial deviation in eV, max/min/avg force deviation in eV/Å), and
  :meth:`Engine.collect` makes row k of it frame k of the trajectory (a crashed task keeps
  its frames up to the crash, :mod:`.outcome`); :meth:`Engine.deviations` streams it;
* **the frames**: :meth:`Engine.frames` reads a task's trajectory back as a dpdata
  ``System`` (frame k = deviation row k) and :meth:`Engine.rms_force` its RMS force.

An engine also owns its ``param.json`` keys (:meth:`Engine.args`, dargs), which the schema
puts under the ``model_devi_engine`` variant (DP-GEN's key, default ``lammps``), and their
checks.  Engines are registered by name in :data:`ENGINES`, which imports every module of
this package, so adding an engine is adding one module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import dpdata
import numpy as np
from dargs import Argument

from ..dispatch import TaskSpec
from ..params import ParamError, arg, require
from ..registry import Registry
from ..select.model_devi import iter_model_devi
from ..select.trust import check_trust, job_trust_args, trust_args
from ..stages import check_stages, stage_args

ENGINES = Registry("dpgen_lite.explore", "model_devi_engine")
register = ENGINES.register

MODEL_DEVI_FILE = "model_devi.out"
#: standard error of a task's program
ERR_FILE = "model_devi.err"
#: standard output of a task's program
OUT_FILE = "model_devi.log"
#: the starting configuration of a task, in the engine's format
JOB_FILE = "job.json"


class Engine:
    """One exploration program (the name is the value of ``model_devi_engine``).

    Parameters
    ----------
    param : the normalized ``param.json``
    """

    name: ClassVar[str]
    #: the trajectory a task writes (frame k = row k of ``model_devi.out``) and its dpdata format
    traj_file: ClassVar[str]
    traj_fmt: ClassVar[str]
    #: the exit code of the task's program, written by the task command
    exit_file: ClassVar[str]
    #: the program's log files, searched for an error line when a task fails
    log_files: ClassVar[tuple[str, ...]] = (OUT_FILE,)

    def __init__(self, param: dict):
        self.param = param

    # ---- keys -----------------------------------------------------------------------------
    @classmethod
    def args(cls) -> list[Argument]:
        """The engine's own ``param.json`` keys (dargs), beside ``model_devi_engine``: DP-GEN's
        model-deviation keys every engine reads (:func:`shared_args`) and its own."""
        return shared_args(cls.job_args())

    @classmethod
    def job_args(cls) -> list[Argument]:
        """Keys of one ``model_devi_jobs`` entry."""
        return []

    @classmethod
    def check(cls, param: dict, n_systems: int) -> None:
        """Cross-key checks of the engine's keys in a normalized ``param.json``: trust levels
        (top-level, per job, per system), the stage keys (:func:`dpgen_lite.stages.check_stages`),
        ``sys_idx`` in range and not repeated,
        ``model_devi_clean_traj``, ``epsilon`` with ``use_relative``.

        Raises
        ------
        ParamError
            naming the key, the value and what is allowed.
        """
        check_trust(param, n_systems)
        check_stages(param)
        clean = param["model_devi_clean_traj"]
        require(isinstance(clean, bool) or clean >= 0,
                f"model_devi_clean_traj = {clean}: true, false, or a number of iterations >= 0")
        for flag, eps in (("use_relative", "epsilon"), ("use_relative_v", "epsilon_v")):
            require(not param[flag] or (param[eps] is not None and param[eps] > 0),
                    f"{eps} = {param[eps]}: {flag} needs a positive {eps} (added to the magnitude, "
                    "so that small forces do not blow the relative deviation up)")
        for j, job in enumerate(param["model_devi_jobs"]):
            where = f"model_devi_jobs[{j}]"
            bad = [i for i in job["sys_idx"] if not (isinstance(i, int) and 0 <= i < n_systems)]
            require(not bad, f"{where}.sys_idx = {job['sys_idx']}: {bad} out of range; sys_configs has "
                    f"{n_systems} system(s), indices 0..{n_systems - 1}")
            twice = sorted({i for i in job["sys_idx"] if job["sys_idx"].count(i) > 1})
            require(not twice, f"{where}.sys_idx = {job['sys_idx']}: {twice} repeated; give each system once "
                    "(its tasks would be made twice over the same folders)")
            require(job["trj_freq"] > 0, f"{where}.trj_freq = {job['trj_freq']}: need a positive number of MD steps")

    @classmethod
    def check_files(cls, param: dict, base_dir: Path) -> None:
        """Checks of the files the engine's keys name, paths relative to ``base_dir`` (the run folder).

        Raises
        ------
        ParamError
            naming the key, the file (and the line) and the fix.
        """

    # ---- tasks ----------------------------------------------------------------------------
    def task_inputs(self, job: dict, iteration: int, models: list[str], sys_idx: int, first: int,
                    base_dir: Path) -> list[tuple[dict[str, str], dict]]:
        """The tasks of one starting configuration of system ``sys_idx`` in ``iteration``.

        Parameters
        ----------
        job : the ``model_devi_jobs`` entry the iteration explores
        models : the ensemble's frozen models as seen from a task folder
        first : the number of the first task (seeds depend on it)
        base_dir : the run folder (templates are relative to it)

        Returns
        -------
        per task, ``({file name: text}, meta)``; ``meta`` goes to the task's ``job.json``.
        """
        raise NotImplementedError

    def write_conf(self, system: dpdata.System, task: Path) -> None:
        """Write the one-frame starting configuration into the task folder."""
        raise NotImplementedError

    def program(self, conf: dict) -> str | None:
        """The command that starts the engine's program in a task of the stage ``conf``
        (:meth:`.context.Context.stage_conf`): ``machine.json``'s ``model_devi.command``
        (None: the engine's default)."""
        return conf["command"]

    def task_spec(self, task: Path, command: str | None) -> TaskSpec:
        """The dpdispatcher task of a task folder; ``command`` is :meth:`program`'s."""
        raise NotImplementedError

    def collect(self, work: Path, failed_jobs: set[str], job: dict) -> dict:
        """The outcome of every task of ``work`` (``01.model_devi``): align deviations and frames,
        write ``md_report.json`` (:func:`.outcome.check_tasks`).

        Raises
        ------
        NoMDFrames
            when every task failed before writing a frame.
        """
        raise NotImplementedError

    # ---- reading --------------------------------------------------------------------------
    def deviations(self, task: Path) -> Iterator[np.ndarray]:
        """The task's ``model_devi.out`` as ``(n, 7)`` blocks, in file order, streamed
        (:func:`dpgen_lite.select.model_devi.iter_model_devi`)."""
        return iter_model_devi(task / MODEL_DEVI_FILE)

    def frames(self, task: Path, type_map: list[str]) -> dpdata.System:
        """Every frame of the task's trajectory (``(n_frames, n_atoms, 3)`` coordinates, Å),
        read by dpdata (``traj_fmt``) with the types of ``type_map``.

        Raises
        ------
        FileNotFoundError
            if the trajectory was deleted (``model_devi_clean_traj``).
        """
        traj = task / self.traj_file
        if not traj.is_file():
            raise FileNotFoundError(f"{traj}: the MD trajectory is gone (model_devi_clean_traj?); "
                                    "redo this iteration from step 3")
        return dpdata.System(str(traj), fmt=self.traj_fmt, type_map=type_map)

    def rms_force(self, task: Path) -> float:
        """RMS force norm over every atom of every frame of the task's trajectory, eV/Å
        (the normalization of ``model_devi_f_avg_relative``)."""
        raise NotImplementedError


def engine(param: dict) -> Engine:
    """The exploration engine ``param["model_devi_engine"]`` names, built for ``param``.

    Raises
    ------
    ParamError
        for an unknown engine, naming the registered ones.
    """
    name = param.get("model_devi_engine", "lammps")
    try:
        return ENGINES.get(name)(param)
    except KeyError as err:
        raise ParamError(f"model_devi_engine = {name!r}: {err.args[0]}") from None


def shared_args(job_args: list[Argument]) -> list[Argument]:
    """DP-GEN's model-deviation keys that every engine reads, with ``job_args`` as the keys of
    a ``model_devi_jobs`` entry."""
    return [
        arg("model_devi_jobs", list, "the exploration jobs, in order: each is explored in one iteration, or "
            "repeated until it converges (stage keys)", sub_fields=[*job_args, *stage_args()], repeat=True),
        arg("model_devi_dt", float, "MD time step, ps", default=0.001),
        arg("model_devi_skip", int, "frames of each task not considered (equilibration), in steps", default=0),
        *trust_args(),
        arg("model_devi_clean_traj", [bool, int], "delete trajectories once labelled: true = all, "
            "an int N = keep those of the last N iterations", default=False),
        arg("model_devi_nopbc", bool, "non-periodic boundaries (molecules in vacuum)", default=False),
        arg("shuffle_poscar", bool, "shuffle the atom order of each starting configuration", default=False),
        arg("use_relative", bool, "trust levels apply to the force deviation relative to the force "
            "magnitude + epsilon (dimensionless)", default=False),
        arg("epsilon", float, "with use_relative: added to the force magnitude, eV/Å", default=None),
        arg("use_relative_v", bool, "the same for the virial deviation", default=False),
        arg("epsilon_v", float, "with use_relative_v: added to the virial magnitude, eV", default=None),
    ]


def md_job_args(ensembles: tuple[str, ...]) -> list[Argument]:
    """Keys of a ``model_devi_jobs`` entry that runs MD at given conditions (DP-GEN's)."""
    return [
        arg("sys_idx", list, "indices into sys_configs explored by this job"),
        arg("temps", list, "temperatures, K", default=None),
        arg("press", list, "pressures, bar (npt ensembles)", default=None),
        arg("trj_freq", int, "steps between dumped frames / model deviation rows", alias=["traj_freq", "t_freq"]),
        arg("nsteps", int, "MD steps per task", default=None),
        arg("ensemble", str, f"one of {', '.join(ensembles)}", default=None),
        arg("dt", float, "MD time step of this job, ps (default: model_devi_dt)", default=None),
        arg("taut", float, "thermostat damping, ps", default=0.1),
        arg("taup", float, "barostat damping, ps", default=0.5),
        *job_trust_args(),
    ]


def check_md_job(job: dict, where: str, ensembles: tuple[str, ...], skip: int) -> None:
    """A job at given conditions: ensemble, temperatures (K), pressures (bar, ``npt*``),
    ``nsteps`` >= ``trj_freq`` and > ``model_devi_skip``.

    Raises
    ------
    ParamError
        naming the key, the value and the fix.
    """
    for key in ("temps", "nsteps", "ensemble"):
        require(job[key] is not None, f"{where}.{key}: missing; a job without template gives temps, nsteps and "
                "ensemble (or a LAMMPS input template: template, rev_mat)")
    require(job["ensemble"] in ensembles, f"{where}.ensemble = {job['ensemble']!r}: allowed {', '.join(ensembles)}")
    require(not job["ensemble"].startswith("npt") or bool(job["press"]),
            f"{where}.press = {job['press']}: ensemble {job['ensemble']!r} needs a list of pressures (bar)")
    require(job["nsteps"] >= job["trj_freq"],
            f"{where}: trj_freq = {job['trj_freq']}, nsteps = {job['nsteps']}: need 0 < trj_freq <= nsteps")
    require(bool(job["temps"]), f"{where}.temps = {job['temps']}: give at least one temperature (K)")
    require(skip < job["nsteps"], f"model_devi_skip = {skip} >= {where}.nsteps = {job['nsteps']}: every frame of "
            f"the job would be skipped and nothing selected; lower model_devi_skip (MD steps) below {job['nsteps']}")


def md_conditions(job: dict) -> list[tuple[float, float | None]]:
    """``(temperature K, pressure bar or None)`` of each task of one configuration of a job at
    given conditions, temperature-major (DP-GEN's task order)."""
    pressures = job["press"] if job["ensemble"].startswith("npt") else [None]
    return [(t, p) for t in job["temps"] for p in pressures]


def velocity_seed(iteration: int, sys_idx: int, task: int, run_seed: int) -> int:
    """The initial-velocity seed of a task: a positive int below 2**24, fixed by its numbers and
    the run's ``random_seed`` (``run_seed``)."""
    return int(np.random.default_rng([iteration, sys_idx, task, run_seed]).integers(1, 2**24))


def relative_keywords(p: dict) -> dict:
    """``relative`` / ``relative_v``: ε in eV/Å / eV, or None (absolute deviation)."""
    return {"relative": p["epsilon"] if p["use_relative"] else None,
            "relative_v": p["epsilon_v"] if p["use_relative_v"] else None}
