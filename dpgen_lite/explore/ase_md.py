"""The ``ase`` engine: model-deviation MD in ASE, the ensemble as deepmd-kit ASE calculators.

For an exploration that needs an ASE-side driver: an ASE constraint LAMMPS lacks, a molecule in
vacuum with ASE's integrators.  ``param.json``::

    "model_devi_engine": "ase",
    "model_devi_jobs": [{"sys_idx": [0], "temps": [300, 600], "ensemble": "nvt", "nsteps": 2000,
                         "trj_freq": 10,
                         "constraints": [{"class": "ase.constraints.FixAtoms",
                                          "kwargs": {"indices": [0, 1, 2, 3]}}]}]

Jobs take the keys of a LAMMPS job without template (``temps``, ``press``, ``ensemble``,
``nsteps``, ``trj_freq``, ``dt``, ``taut``, ``taup``, trust levels) plus ``constraints``; the
selection, trust levels, ``use_relative`` and ``model_devi_skip`` work as with LAMMPS.  Each
task folder holds ``POSCAR`` and ``ase_md.json`` and runs :mod:`.ase_md_runner`, which writes
``traj.traj`` (ASE trajectory, read back through dpdata's ``ase/traj``) and ``model_devi.out``.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import dpdata
import numpy as np
from dargs import Argument

from ..dispatch import TaskSpec
from ..params import arg, instantiate, require
from .ase_md_runner import MODEL_DEVI_FILE, SETTINGS, TRAJ_FILE
from .base import (ERR_FILE, OUT_FILE, Engine, check_md_job, md_conditions, md_job_args, register,
                   relative_keywords, velocity_seed)
from .outcome import check_tasks

ENSEMBLES = ("nve", "nvt", "npt", "npt-i", "npt-iso", "npt-t", "npt-tri")


@register
class AseEngine(Engine):
    """ASE molecular dynamics driven by deepmd-kit's ``deepmd.calculator.DP``."""

    name = "ase"
    traj_file = TRAJ_FILE
    traj_fmt = "ase/traj"
    exit_file = "ase_md.exit"

    @classmethod
    def job_args(cls) -> list[Argument]:
        """A job at given conditions (DP-GEN's keys) with ASE ``constraints``."""
        return [*md_job_args(ENSEMBLES),
                arg("constraints", list, "ASE constraints of the MD: [{\"class\": import path, \"kwargs\": {...}}]",
                    default=[], sub_fields=[arg("class", str, "import path, e.g. ase.constraints.FixAtoms"),
                                            arg("kwargs", dict, "keyword arguments of the class", default={})],
                    repeat=True)]

    @classmethod
    def check(cls, param: dict, n_systems: int) -> None:
        """The shared checks (:meth:`.base.Engine.check`), each job's conditions, and its
        constraints built once (import path and keyword arguments)."""
        super().check(param, n_systems)
        for j, job in enumerate(param["model_devi_jobs"]):
            where = f"model_devi_jobs[{j}]"
            require(not job.get("template"), f"{where}.template: LAMMPS input templates need model_devi_engine "
                    "'lammps'; the ase engine takes temps, ensemble and nsteps")
            check_md_job(job, where, ENSEMBLES, param["model_devi_skip"])
            require(not job["constraints"] or job["ensemble"] in ("nve", "nvt"),
                    f"{where}.constraints with ensemble = {job['ensemble']!r}: ASE's MTK barostats do not support "
                    "constraints; use ensemble 'nvt' or 'nve' (or no constraints)")
            for k, c in enumerate(job["constraints"]):
                instantiate(c["class"], c["kwargs"], f"{where}.constraints[{k}].class", "ase.constraints.FixAtoms")

    def task_inputs(self, job: dict, iteration: int, models: list[str], sys_idx: int, first: int,
                    base_dir: Path) -> list[tuple[dict[str, str], dict]]:
        """``ase_md.json`` of each task: one per temperature (K) and pressure (bar, ``npt*`` only)."""
        p = self.param
        out = []
        for k, (temp, press) in enumerate(md_conditions(job)):
            settings = {"models": models, "ensemble": job["ensemble"], "temp": temp, "press": press,
                        "nsteps": job["nsteps"], "trj_freq": job["trj_freq"], "dt": job["dt"] or p["model_devi_dt"],
                        "taut": job["taut"], "taup": job["taup"],
                        "seed": velocity_seed(iteration, sys_idx, first + k, p["random_seed"]),
                        "nopbc": p["model_devi_nopbc"], "constraints": job["constraints"], **relative_keywords(p)}
            out.append(({SETTINGS: json.dumps(settings, indent=1)},
                        {"temp": temp, "press": press, "ensemble": job["ensemble"], "nsteps": job["nsteps"],
                         "trj_freq": job["trj_freq"]}))
        return out

    def write_conf(self, system: dpdata.System, task: Path) -> None:
        """``POSCAR`` (VASP 5, elements named)."""
        system.to("vasp/poscar", str(task / "POSCAR"))

    def task_spec(self, task: Path, command: str | None) -> TaskSpec:
        """``python -m dpgen_lite.explore.ase_md_runner; echo $? > ase_md.exit; touch <outputs>``
        (``command`` replaces the interpreter, e.g. a remote machine's ``python``)."""
        python = command or shlex.quote(sys.executable)
        outputs = [MODEL_DEVI_FILE, TRAJ_FILE]
        return TaskSpec(path=task.name, command=f"{python} -m dpgen_lite.explore.ase_md_runner; echo $? > "
                        f"{self.exit_file}; touch {' '.join(outputs)}", forward_files=["POSCAR", SETTINGS],
                        backward_files=[*outputs, self.exit_file], outlog=OUT_FILE, errlog=ERR_FILE)

    def collect(self, work: Path, failed_jobs: set[str], job: dict) -> dict:
        """Failed tasks keep the frames written before the error (:func:`.outcome.check_tasks`)."""
        return check_tasks(work, failed_jobs, self)

    def align(self, task: Path) -> dict:
        """Nothing to realign: the runner writes a frame before its row, and both at once."""
        rows = sum(len(block) for block in self.deviations(task)) if (task / MODEL_DEVI_FILE).is_file() else 0
        return {"frames": rows, "rows_dropped": 0, "frames_dropped": 0}

    def rms_force(self, task: Path) -> float:
        """sqrt(<|F_i|²>) over the atoms and frames of ``traj.traj``, eV/Å; NaN without a frame."""
        from ase.io.trajectory import Trajectory

        traj = task / TRAJ_FILE
        if not traj.is_file() or traj.stat().st_size == 0:
            return float("nan")
        with Trajectory(str(traj)) as frames:
            forces = [atoms.get_forces(apply_constraint=False) for atoms in frames]
        if not forces:
            return float("nan")
        return float(np.sqrt(np.mean(np.sum(np.concatenate(forces) ** 2, axis=-1))))

