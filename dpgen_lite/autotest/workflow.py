"""make / run / post of the relaxation and of the properties, for every structure and interaction.

Folders: ``<root>/<conf>/relaxation/relax_task`` and ``<root>/<conf>/<type>_<suffix>/task.NNNNNN``
(DP-GEN's ``<type>_<output_suffix>`` for a refine, ``<type>_reprod`` for a reproduce),
``<root>`` the work folder (one interaction) or ``<work>/<name>`` (a list of interactions).
Each property folder holds the model files, ``tasks.json`` (task names, metadata, input files),
after post ``result.json`` and ``result.out``; ``<root>/result.json`` / ``result.out`` gather all.
Every task runs through :func:`dpgen_lite.dispatch.run_tasks` (one submission per interaction and step).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import ase.io

from ..dispatch import TaskSpec, default_stage, discard, run_tasks
from ..params import ParamError
from .calculators.base import get_calculator
from .task import TASK_FILE, TaskResult, write_task

log = logging.getLogger(__name__)
STEPS = ("relaxation", "properties")
TASKS_FILE = "tasks.json"
RELAX_TASK = "relaxation/relax_task"


class Autotest:
    """One autotest run.

    Parameters
    ----------
    param : the output of :func:`dpgen_lite.autotest.schema.load_param`
    work_dir : folder the structures are relative to
    mdata : ``machine.json`` (validated; {} = this machine); LAMMPS and ASE tasks use its
        ``model_devi`` stage, fp single points its ``fp`` stage (as DP-GEN's autotest)
    """

    def __init__(self, param: dict, work_dir: Path, mdata: dict | None = None):
        self.param = param
        self.work_dir = Path(work_dir).resolve()
        self.mdata = mdata or {}
        multi = isinstance(param["interaction"], list)
        self.runs = [(inter, get_calculator(inter, self.work_dir),
                      self.work_dir / inter["name"] if multi else self.work_dir) for inter in param["interactions"]]

    # ---- helpers -----------------------------------------------------------------------
    def conf_keys(self) -> list[str]:
        """Structure folders relative to the work folder (``confs/std-fcc``)."""
        return [c.resolve().relative_to(self.work_dir).as_posix() for c in self.param["confs"]]

    def props(self, step: str):
        """Property objects of ``step`` (``relaxation`` or ``properties``)."""
        return self.param["props"][:1] if step == "relaxation" else self.param["props"][1:]

    def next_step(self) -> str:
        """``relaxation`` until every structure's relaxation is posted, then ``properties``."""
        done = all((root / key / RELAX_TASK / "result_task.json").is_file()
                   for _, _, root in self.runs for key in self.conf_keys())
        return "properties" if done else "relaxation"

    # ---- steps -------------------------------------------------------------------------
    def make(self, step: str) -> None:
        """Write the task folders of ``step``.

        Raises
        ------
        ParamError
            for ``properties`` before the relaxation was posted, or before the folders a refine or
            reproduce takes its tasks from are posted (checked before anything is written).
        """
        for _, _, root in self.runs:
            for key in self.conf_keys():
                for prop in self.props(step):
                    prop.sources(root / key)
        for inter, calc, root in self.runs:
            # new tasks, new submission: forget the previous one (its record and dpdispatcher's finished
            # tags, which would otherwise pass off a remade task with the same hash as already run)
            discard(self.mdata.get(calc.stage) or default_stage(calc.stage), root, ".")
            for key in self.conf_keys():
                cdir = root / key
                if cdir != self.work_dir / key:
                    cdir.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(self.work_dir / key / "POSCAR", cdir / "POSCAR")
                if step == "relaxation":
                    structure = ase.io.read(cdir / "POSCAR", format="vasp")
                else:
                    try:
                        structure = TaskResult.load(cdir / RELAX_TASK).atoms
                    except RuntimeError as err:
                        raise ParamError(f"{err}; make, run and post the relaxation first") from None
                for prop in self.props(step):
                    self._make_prop(calc, prop, prop.start_structure(structure, cdir), cdir / prop.folder)

    def _make_prop(self, calc, prop, structure, pdir: Path) -> None:
        if pdir.exists():
            shutil.rmtree(pdir)
        pdir.mkdir(parents=True)
        models = calc.copy_models(pdir)
        entries = []
        for k, (atoms, meta) in enumerate(prop.make_tasks(structure, pdir)):
            name = "relax_task" if prop.name == "relaxation" else f"task.{k:06d}"
            setting = prop.task_setting(meta)
            write_task(pdir / name, atoms, setting)
            files = ["POSCAR", TASK_FILE, *prop.write_inputs(calc, pdir / name, atoms, setting, meta)]
            entries.append({"task": name, "meta": meta, "files": files})
        (pdir / TASKS_FILE).write_text(json.dumps({"models": models, "tasks": entries}, indent=1))
        log.info("%s: %d task(s)", pdir, len(entries))

    def _entries(self, root: Path, step: str):
        for key in self.conf_keys():
            for prop in self.props(step):
                pdir = root / key / prop.folder
                if not (pdir / TASKS_FILE).is_file():
                    raise ParamError(f"{pdir}: no {TASKS_FILE}; run `dpgen autotest make` first")
                yield key, prop, pdir, json.loads((pdir / TASKS_FILE).read_text())

    def run(self, step: str) -> None:
        """Run every task of ``step`` through dpdispatcher (one submission per interaction)."""
        for inter, calc, root in self.runs:
            stage = self.mdata.get(calc.stage) or default_stage(calc.stage)
            tasks, common = [], []
            for _, prop, pdir, spec in self._entries(root, step):
                rel = pdir.relative_to(root).as_posix()
                common += [f"{rel}/{m}" for m in spec["models"]]
                tasks += [TaskSpec(path=f"{rel}/{e['task']}", command=prop.task_command(calc, stage.get("command"),
                                                                                      e["meta"]),
                                   forward_files=e["files"], backward_files=prop.task_backward_files(calc, e["meta"]))
                          for e in spec["tasks"]]
            run_tasks(stage, root, ".", tasks, forward_common_files=common)

    def post(self, step: str) -> dict:
        """Read the task results, compute the properties, write ``result.json`` / ``result.out``
        (per property and gathered in each root); return the gathered results of the last interaction.

        Raises
        ------
        dpgen_lite.autotest.task.TaskFailed
            for a task without usable output.
        """
        summary = {}
        for inter, calc, root in self.runs:
            path = root / "result.json"
            summary = json.loads(path.read_text()) if path.is_file() else {}
            summary.update(interaction=inter["name"], type=inter["type"])
            confs = summary.setdefault("confs", {})
            for key, prop, pdir, spec in self._entries(root, step):
                results = []
                for e in spec["tasks"]:
                    res = prop.read_result(calc, pdir / e["task"])
                    res.save(pdir / e["task"])
                    results.append(res)
                relaxed = results[0] if prop.name == "relaxation" else TaskResult.load(root / key / RELAX_TASK)
                out = {"type": prop.name, **prop.post(results, [e["meta"] for e in spec["tasks"]], relaxed, pdir)}
                (pdir / "result.json").write_text(json.dumps(out, indent=1))
                (pdir / "result.out").write_text(prop.report(out))
                confs.setdefault(key, {})[prop.folder] = out
            path.write_text(json.dumps(summary, indent=1))
            (root / "result.out").write_text(self.report(summary))
        return summary

    @staticmethod
    def report(summary: dict) -> str:
        """All ``result.out`` texts of a gathered result."""
        from .registry import PROPERTIES
        text = f"interaction: {summary['interaction']} ({summary['type']})\n"
        for key, props in summary["confs"].items():
            for folder, res in props.items():
                text += f"\n== {key} / {folder}\n" + PROPERTIES.get(res["type"])({}).report(res)
        return text

    def all(self) -> None:
        """make, run and post the relaxation, then the properties."""
        for step in STEPS:
            self.make(step)
            self.run(step)
            self.post(step)
