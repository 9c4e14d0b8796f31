"""Reproduce: single points of another run's frames of a property (DP-GEN's ``reproduce: true``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...params import ParamError
from ..task import TaskResult
from .base import RELAX_FLAGS, Property, fmt, register, table

#: property types whose reproduction uses every frame by default (DP-GEN's ``reprod_last_frame`` false)
ALL_FRAMES = ("vacancy", "interstitial")


def load_frames(task_dir: Path) -> tuple[list, list[float]]:
    """Structures (ASE Atoms) and total energies (eV) of a finished task's ``result_task.json``:
    every frame of DP-GEN's (a dpdata ``LabeledSystem``: the relaxation trajectory of a VASP or
    LAMMPS task), or the final frame of dpgen_lite's.

    Raises
    ------
    ParamError
        when the file is missing or unreadable.
    """
    import dpdata
    path = Path(task_dir) / "result_task.json"
    if not path.is_file():
        raise ParamError(f"{task_dir}: no result_task.json; that task was not posted")
    data = json.loads(path.read_text())
    if data.get("@class") == "LabeledSystem":
        system = dpdata.LabeledSystem.from_dict(data)
        return system.to_ase_structure(), [float(e) for e in system["energies"]]
    if "energy_eV" in data:
        res = TaskResult.load(task_dir)
        return [res.atoms], [res.energy]
    raise ParamError(f"{path}: neither DP-GEN's (dpdata LabeledSystem) nor dpgen_lite's result_task.json")


@register
class Reproduce(Property):
    """E/atom of the frames of ``<init_data_path>/<conf>/<type>_<init_from_suffix>/task.*`` (another
    interaction's run of the property ``type``, e.g. VASP's) recomputed as single points, in
    ``<type>_reprod`` (DP-GEN's layout).

    Built by the schema from a ``properties`` entry with ``reproduce: true`` (the ``type`` is the
    property reproduced).  Keys (DP-GEN's): ``init_data_path`` (the other run's ``confs`` folder,
    relative to the work folder; the schema adds it resolved as ``init_data_path_abs``),
    ``init_from_suffix`` (default "00"), ``reprod_last_frame`` (only each task's final frame;
    default true, false for vacancy and interstitial).  Per init task: ``nframes``, the energies
    and ``error_eV_per_atom``: with every frame, the RMS difference after the final frames are
    aligned, the first frame left out (as DP-GEN); with the final frame only, its absolute difference.
    """

    name = "reproduce"
    default_setting = dict.fromkeys(RELAX_FLAGS, False)

    @property
    def folder(self) -> str:
        return f"{self.conf['type']}_reprod"

    def setting(self) -> dict:
        return {**super().setting(), **self.default_setting}

    def last_frame(self) -> bool:
        """``reprod_last_frame``, DP-GEN's default for the property type when not given."""
        given = self.conf.get("reprod_last_frame")
        return self.conf["type"] not in ALL_FRAMES if given is None else given

    def sources(self, conf_dir: Path) -> list[tuple[Path, dict]]:
        """The init tasks (folders) of the structure ``conf_dir`` (matched by its folder name).

        Raises
        ------
        ParamError
            naming the key and the missing folder.
        """
        suffix = self.conf.get("init_from_suffix") or "00"
        init = Path(self.conf["init_data_path_abs"]) / Path(conf_dir).name / f"{self.conf['type']}_{suffix}"
        tasks = sorted(init.glob("task.[0-9]*[0-9]"))
        if not tasks:
            raise ParamError(f"properties[{self.conf['type']}].init_data_path = {self.conf['init_data_path']!r}, "
                             f"init_from_suffix = {suffix!r}: {init} holds no task.* folder to reproduce")
        return [(t, {}) for t in tasks]

    def make_tasks(self, relaxed, folder):
        tasks = []
        for task_dir, _ in self.sources(Path(folder).parent):
            frames, energies = load_frames(task_dir)
            keep = range(len(frames) - 1, len(frames)) if self.last_frame() else range(len(frames))
            for j in keep:
                tasks.append((frames[j], {"init_task": str(task_dir), "frame": j,
                                          "init_energy_eV": energies[j], "natoms": len(frames[j])}))
        return tasks

    def post(self, results, metas, relaxed, folder):
        groups: dict[str, list] = {}
        for r, m in zip(results, metas):
            groups.setdefault(m["init_task"], []).append((m, r.energy / m["natoms"]))
        rows = []
        for task, pairs in groups.items():
            init = np.array([m["init_energy_eV"] / m["natoms"] for m, _ in pairs])
            mine = np.array([e for _, e in pairs])
            if self.last_frame() or len(pairs) == 1:
                error = float(np.abs(mine - init).max())
            else:
                diff = (mine - (mine[-1] - init[-1]) - init)[1:]
                error = float(np.sqrt(np.mean(diff ** 2)))
            rows.append({"init_task": task, "nframes": len(pairs), "frames": [m["frame"] for m, _ in pairs],
                         "init_energy_per_atom_eV": init.tolist(), "energy_per_atom_eV": mine.tolist(),
                         "error_eV_per_atom": error})
        return {"property": self.conf["type"], "last_frame": self.last_frame(), "tasks": rows,
                "max_error_eV_per_atom": max(r["error_eV_per_atom"] for r in rows)}

    def report(self, res):
        lines = [(r["init_task"], f, fmt(a, 6), fmt(b, 6), fmt(b - a, 6))
                 for r in res["tasks"] for f, a, b in zip(r["frames"], r["init_energy_per_atom_eV"],
                                                          r["energy_per_atom_eV"])]
        errors = [(r["init_task"], r["nframes"], fmt(r["error_eV_per_atom"], 6)) for r in res["tasks"]]
        return (f"Reproduce {res['property']}\n"
                + table(lines, ("init task", "frame", "init E (eV/atom)", "E (eV/atom)", "diff (eV/atom)"))
                + table(errors, ("init task", "nframes", "error (eV/atom)")))

    @classmethod
    def scalars(cls, res):
        return {"reproduce max error (eV/atom)": res["max_error_eV_per_atom"]}
