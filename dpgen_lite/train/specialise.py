"""``dpgen specialise param.json [machine.json] --autotest autotest.json``: Autotest picks what
the final model is specialised on.

After ``dpgen run`` has ended (final stage included), one command closes the loop that the
specialisation of Wen et al., npj Comput. Mater. 7, 206 (2021) leaves to the user:

1. ``before``: Autotest of the final model (the specialised one if the run made one, else the
   long-trained one) and of the reference, the run's own fp style: an ``ase`` fp style is an ASE
   interaction (it relaxes), any other fp style gives single points (the Autotest file must then
   be ``static`` on relaxed structures);
2. ``rank``: each property's error is the largest deviation 100 |x - x_ref| / |x_ref| (%) of its
   quantities; the ``top`` worst properties are picked;
3. ``label``: the configurations of the properties' tasks (each task's final structure: relaxed
   by the reference where the task relaxes, and displaced copies) are labelled: the picked
   properties' with the run's fp style (``fp/data.000``) and, unless ``guard_weight`` is 0, the
   others' (the guard set) so that the retraining keeps what the model already gets right.
   ``guard_labels="model"`` labels the guard set with the final model's own predictions
   (``guard/``; dpdata's ``predict``, no fp calculation): the retraining is held to what the
   model predicted, the "learning without forgetting" of Li and Hoiem, IEEE TPAMI 40, 2935
   (2018).  ``"fp"`` labels it with the fp style too (``fp/data.001``).  Measured on the
   quickstart (README): with fp labels, properties already within 2 % of the reference doubled
   their error in every training setting; with the model's labels none did;
4. ``train``: from the final model's checkpoint, on every label of the run and the run's special
   sets, the picked set weighted by ``weight`` and the guard set by ``guard_weight``, for
   ``numb_steps`` steps from ``start_lr`` (default: the final stage's ``special_numb_steps`` and
   ``special_start_lr``);
5. ``after``: Autotest of the new model; ``specialise.md`` / ``specialise.csv`` /
   ``specialise.json`` tabulate each quantity's reference value and the error before and after.

Everything lies under ``final/04.specialise``: ``before/`` and ``after/`` (Autotest work folders
with ``confs/``, ``reference/``, ``model/``), ``fp/`` (``task.000.NNNNNN``, ``data.000``),
``guard/`` (the guard set labelled by the model), ``train/000``.  Each finished step is appended
to ``record.json``; a killed command resumes at the step it was in, and that step resumes as the
run's steps do (dpdispatcher's records, the training checkpoint).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import dpdata
import numpy as np

from ..context import Context, log
from ..label.stage import collect_labels, fp_style, run_fp_tasks, write_deepmd, write_fp_tasks
from ..params import ParamError
from ..record import atomic_write, read_json, read_record
from .final import (COMPRESSED_FINAL, FINAL, LONG, SPECIAL, final_dir, final_models, run_train_tasks, special_data,
                    special_sets, special_start_lr, write_train_tasks)
from .stage import training_systems

WORK = "04.specialise"
GUARD = "guard"
RECORD = "record.json"
STEPS = ("before", "rank", "label", "train", "after")
REFERENCE, MODEL = "reference", "model"
#: who labels the guard set: the final model itself, or the run's fp style
GUARD_LABELS = ("model", "fp")
#: fp style keys an ``fp`` Autotest interaction takes over from ``param.json``
FP_KEYS = ("fp_style", "fp_params", "user_fp_params", "external_input_path")


def reference_interaction(param: dict) -> dict:
    """The run's fp style as an Autotest ``interaction`` named ``reference``: ``ase`` (it relaxes)
    for an ``ase`` fp style, else ``fp`` (single points)."""
    if param["fp_style"] == "ase":
        fp = param["fp_params"]
        return {"name": REFERENCE, "type": "ase", "calculator": fp["calculator"], "kwargs": fp.get("kwargs", {}),
                "type_map": param["type_map"]}
    return {"name": REFERENCE, "type": "fp", "type_map": param["type_map"],
            **{k: param[k] for k in FP_KEYS if param.get(k) is not None}}


def final_model(ctx: Context) -> tuple[Path, Path]:
    """The model the run published last and its training folder: the specialised model if the
    final stage made one, else the long-trained one (compressed where there is one).

    Raises
    ------
    ParamError
        if the final stage has not trained a model.
    """
    models = final_models(ctx)
    for kind, stage in (("special", SPECIAL), ("long", LONG)):
        for name in (f"{kind}_000_compressed", f"{kind}_000"):
            if name in models:
                return models[name], final_dir(ctx, stage)
    raise ParamError(f"{ctx.work_dir}: no final model under {FINAL}/; finish `dpgen run` with final_training first")


def property_errors(results: dict[str, dict]) -> list[dict]:
    """Per (structure, property folder), the quantities' values and deviations of the model from
    the reference, worst property first.

    ``results``: ``{"reference": result.json, "model": result.json}`` of one Autotest run.
    Returns ``[{"structure", "property", "error_pct", "quantities": {quantity: {"reference",
    "model", "error_pct"}}}]``; error_pct = 100 |x - x_ref| / |x_ref| (%), a property's the largest
    of its quantities.  The relaxation (the cell itself) is not ranked.
    """
    from ..autotest.compare import scalar_rows
    props: dict[tuple[str, str], dict] = {}
    for key, folder, quantity, values in scalar_rows(list(results.items()), REFERENCE):
        ref, got = values[REFERENCE], values[MODEL]
        if folder == "relaxation" or ref is None or got is None or ref == 0:
            continue
        entry = props.setdefault((key, folder), {"structure": key, "property": folder, "quantities": {}})
        entry["quantities"][quantity] = {"reference": ref, "model": got, "error_pct": 100 * abs(got - ref) / abs(ref)}
    for entry in props.values():
        entry["error_pct"] = max(q["error_pct"] for q in entry["quantities"].values())
    return sorted(props.values(), key=lambda e: -e["error_pct"])


def task_frames(pdir: Path, type_map: list[str], n_perturb: int = 0, distance: float = 0.03) -> list[dpdata.System]:
    """One-frame Systems of the tasks of the property folder ``pdir``: each task's final
    structure (relaxed where the task relaxes), the configuration the property is computed on,
    and ``n_perturb`` copies with every atom displaced ~``distance`` Å at random (dpdata's
    ``perturb``, ``normal`` style, cell kept; seed numpy's generator first): a relaxed frame
    has no forces to learn from, a displaced one 3N force components.  (Unrelaxed start
    structures are left out: an interstitial's carries forces of several eV/Å that outweigh
    everything else in the force loss.)"""
    from ..autotest.task import TaskResult
    frames = []
    for entry in json.loads((pdir / "tasks.json").read_text())["tasks"]:
        frame = dpdata.System(TaskResult.load(pdir / entry["task"]).atoms, fmt="ase/structure", type_map=type_map)
        frames.append(frame)
        if n_perturb:
            moved = frame.perturb(n_perturb, cell_pert_fraction=0.0, atom_pert_distance=distance)
            frames += [moved.sub_system([i]) for i in range(n_perturb)]
    return frames


def label_by_model(frames: list[dpdata.System], model: Path, path: Path, type_map: list[str]) -> None:
    """Label ``frames`` with ``model``'s energies (eV), forces (eV/Å) and virials (eV) through
    dpdata's ``predict`` (deepmd-kit's ``DeepPot``, in this process) and write them to ``path``
    as deepmd/npy (:func:`..label.stage.write_deepmd`), replacing what was there (the label step
    is recorded only after this, so a killed one is redone whole).

    Raises
    ------
    RuntimeError
        (deepmd-kit's) if the model cannot be loaded.
    """
    labelled = dpdata.MultiSystems(*frames, type_map=type_map).predict(str(model), driver="dp")
    shutil.rmtree(path, ignore_errors=True)
    write_deepmd(list(labelled.systems.values()), path, type_map)


class Specialise:
    """One ``dpgen specialise`` of the run ``ctx``.

    Parameters
    ----------
    ctx : the run (validated ``param.json`` with ``final_training``, ``machine.json``)
    autotest : the Autotest file's content (``structures``, ``relaxation``, ``properties``; no
        ``interaction``: the command sets the reference and the model)
    autotest_dir : folder its structures are relative to
    top : how many of the worst properties are picked (weighted by ``weight``)
    weight : sampling weight of a frame of the picked properties relative to a regular frame
    guard_weight : that of a frame of the other properties (0: they are not labelled)
    guard_labels : ``"model"``: the guard set is labelled by the final model's predictions;
        ``"fp"``: by the run's fp style
    n_perturb : randomly displaced copies (~0.03 Å) labelled besides each configuration
    numb_steps, start_lr : of the training (None: ``special_numb_steps``, ``special_start_lr``)

    Raises
    ------
    ParamError
        (at construction) for an Autotest file with ``interaction`` or ``reference``, a bad key of
        it, ``top`` < 1, ``weight`` <= 0, ``guard_weight`` < 0, ``guard_labels`` not in
        :data:`GUARD_LABELS`, ``n_perturb`` < 0, or a run without a finished final stage.
    """

    def __init__(self, ctx: Context, autotest: dict, autotest_dir: Path, top: int = 2, weight: float = 10.0,
                 guard_weight: float = 10.0, n_perturb: int = 3, numb_steps: int | None = None,
                 start_lr: float | None = None, guard_labels: str = "model"):
        from ..autotest.schema import load_param
        for key in ("interaction", "reference"):
            if key in autotest:
                raise ParamError(f"autotest file: {key} = {autotest[key]!r}: dpgen specialise sets the interactions "
                                 "itself (the run's fp style as the reference, the final model); remove the key")
        if top < 1:
            raise ParamError(f"--top = {top}: must be >= 1 (how many of the worst properties are picked)")
        if weight <= 0:
            raise ParamError(f"--weight = {weight}: must be > 0 (3 = a frame counts three times a regular one)")
        if n_perturb < 0:
            raise ParamError(f"--perturb = {n_perturb}: must be >= 0 (displaced copies per configuration)")
        if guard_weight < 0:
            raise ParamError(f"--guard-weight = {guard_weight}: must be >= 0 (0: the other properties are not labelled)")
        if guard_labels not in GUARD_LABELS:
            raise ParamError(f"--guard-labels = {guard_labels!r}: must be one of {', '.join(GUARD_LABELS)} (who "
                             "labels the other properties' configurations: the final model or the fp style)")
        if not ctx.param.get("final_training"):
            raise ParamError("param.json: final_training is not set; dpgen specialise starts from the final model")
        from ..scheduler import ALL_STEP_NAMES
        records = read_record(ctx.work_dir)
        if not records or records[-1][1] != len(ALL_STEP_NAMES) - 1:
            raise ParamError(f"{ctx.work_dir}: the run's final stage has not ended (record.dpgen's last line "
                             f"{records[-1] if records else 'missing'}); finish `dpgen run` first")
        self.ctx, self.top, self.weight, self.guard_weight = ctx, top, weight, guard_weight
        self.n_perturb, self.guard_labels = n_perturb, guard_labels
        self.numb_steps = numb_steps or ctx.param["final_training"]["special_numb_steps"]
        self.start_lr = start_lr or special_start_lr(ctx)
        self.work = final_dir(ctx, WORK)
        self.model, self.trained = final_model(ctx)
        self.autotest = autotest
        self.confs = load_param(self._autotest(self.model), autotest_dir, "autotest file")["confs"]
        self.autotest_dir = Path(autotest_dir).resolve()

    def _autotest(self, model: Path) -> dict:
        inters = [reference_interaction(self.ctx.param),
                  {"name": MODEL, "type": "deepmd", "model": str(model), "type_map": self.ctx.param["type_map"]}]
        return {**self.autotest, "interaction": inters, "reference": REFERENCE}

    def _run_autotest(self, folder: Path, model: Path, with_reference: bool) -> dict[str, dict]:
        """Autotest in ``folder`` (structures copied there); ``{name: result.json}``."""
        from ..autotest.schema import load_param
        from ..autotest.workflow import Autotest
        for conf in self.confs:
            dest = folder / conf.relative_to(self.autotest_dir)
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(conf / "POSCAR", dest / "POSCAR")
        raw = self._autotest(model)
        if not with_reference:
            raw["interaction"] = raw["interaction"][1:]
            raw.pop("reference")
        at = Autotest(load_param(raw, folder, "autotest file"), folder, self.ctx.mdata)
        at.all()
        return {inter["name"]: json.loads((root / "result.json").read_text()) for inter, _, root in at.runs}

    def done(self) -> list[str]:
        """Steps finished, from ``record.json``."""
        return (read_json(self.work / RECORD) or {}).get("done", [])

    def run(self) -> dict:
        """Every step not yet done, in order; returns ``specialise.json``'s content."""
        self.work.mkdir(parents=True, exist_ok=True)
        for step in STEPS:
            if step not in self.done():
                log.info("specialise: %s", step)
                getattr(self, step)()
                atomic_write(self.work / RECORD, json.dumps({"done": [*self.done(), step]}))
        return json.loads((self.work / "specialise.json").read_text())

    # ---- steps -------------------------------------------------------------------------
    def before(self) -> None:
        """Autotest of the reference and of the final model."""
        self._run_autotest(self.work / "before", self.model, with_reference=True)

    def rank(self) -> None:
        """``rank.json``: the properties worst first, and the ``top`` picked."""
        before = self.work / "before"
        results = {n: json.loads((before / n / "result.json").read_text()) for n in (REFERENCE, MODEL)}
        ranked = property_errors(results)
        if not ranked:
            raise ParamError("autotest file: no property gives a number to compare with the reference; add properties")
        picked = ranked[:self.top]
        atomic_write(self.work / "rank.json", json.dumps({"ranked": ranked, "picked": picked}, indent=1))
        for e in ranked:
            log.info("specialise: %-28s %-16s error %6.1f %%%s", e["structure"], e["property"], e["error_pct"],
                     "  <- picked" if e in picked else "")

    def label(self) -> None:
        """Label the configurations: ``fp/data.000`` of the picked properties with the run's fp
        style; the others' (with a guard weight) in ``guard/`` by the final model, or in
        ``fp/data.001`` by the fp style."""
        fp, style = self.work / "fp", fp_style(self.ctx.param, self.ctx.work_dir)
        rank = json.loads((self.work / "rank.json").read_text())
        guards = [e for e in rank["ranked"] if e not in rank["picked"]] if self.guard_weight else []
        np.random.seed(self.ctx.param["random_seed"])  # dpdata's perturb draws from numpy's generator
        frames = [[(k, f, {"structure": e["structure"], "property": e["property"]}) for e in props
                   for f in task_frames(self.work / "before" / REFERENCE / e["structure"] / e["property"],
                                        self.ctx.param["type_map"], self.n_perturb)]
                  for k, props in enumerate((rank["picked"], guards))]
        by_fp = frames[0] + frames[1] if self.guard_labels == "fp" else frames[0]
        if not (fp / "fp_tasks.done").is_file():
            shutil.rmtree(fp, ignore_errors=True)
            write_fp_tasks(style, by_fp, fp)
            (fp / "fp_tasks.done").write_text(f"{len(by_fp)}\n")
            log.info("specialise: %d configurations to label with the fp style", len(by_fp))
        run_fp_tasks(self.ctx, fp.relative_to(self.ctx.work_dir).as_posix())
        collect_labels(style, fp, self.ctx.param["ratio_failed"])
        if self.guard_labels == "model" and frames[1]:
            label_by_model([f for _, f, _ in frames[1]], self.model, self.work / GUARD, self.ctx.param["type_map"])
            log.info("specialise: %d guard configurations labelled by %s", len(frames[1]), self.model.name)

    def train(self) -> None:
        """From the final model's checkpoint, the run's labels and special sets plus the new set."""
        work, conf = self.work / "train", self.ctx.param["final_training"]
        last = read_record(self.ctx.work_dir)[-1][0]
        systems, _ = training_systems(self.ctx, last + 1)
        guard_dir = self.work / GUARD if self.guard_labels == "model" else self.work / "fp" / "data.001"
        picked, guard = ([t.parent for t in sorted(folder.glob("**/type.raw"))]
                         for folder in (self.work / "fp" / "data.000", guard_dir))
        blocks = [(systems, 1.0), *((special_data(self.ctx, k, e), e["weight"]) for k, e in enumerate(special_sets(conf))),
                  (picked, self.weight), *([(guard, self.guard_weight)] if guard else [])]
        if not (work / "train.made").is_file():
            write_train_tasks(self.ctx, work, blocks, self.numb_steps, init_from=self.trained, start_lr=self.start_lr)
            (work / "train.made").write_text("")
        run_train_tasks(self.ctx, work, init=True)

    def specialised(self) -> Path:
        """The new model (compressed where the final stage compresses)."""
        suffix = self.model.suffix
        task = self.work / "train" / "000"
        compressed = task / f"{COMPRESSED_FINAL}{suffix}"
        return compressed if compressed.is_file() else task / f"frozen_model{suffix}"

    def after(self) -> None:
        """Autotest of the new model; the before/after table."""
        after = self._run_autotest(self.work / "after", self.specialised(), with_reference=False)[MODEL]
        reference = json.loads((self.work / "before" / REFERENCE / "result.json").read_text())
        rank = json.loads((self.work / "rank.json").read_text())  # the errors before, worst first
        table = before_after(rank["ranked"], property_errors({REFERENCE: reference, MODEL: after}), rank["picked"])
        table.update(model_before=str(self.model), model_after=str(self.specialised()))
        atomic_write(self.work / "specialise.json", json.dumps(table, indent=1))
        atomic_write(self.work / "specialise.md", table_markdown(table))
        atomic_write(self.work / "specialise.csv", table_csv(table))


def before_after(before: list[dict], after: list[dict], picked: list[dict]) -> dict:
    """Rows (structure, property, quantity, reference, before, error before %, after, error after
    %, after/before) of every quantity in both; ``picked`` marks the properties picked as worst."""
    got = {(e["structure"], e["property"]): e for e in after}
    worst = {(e["structure"], e["property"]) for e in picked}
    rows = []
    for e in before:
        key = (e["structure"], e["property"])
        for quantity, q in e["quantities"].items():
            a = got.get(key, {}).get("quantities", {}).get(quantity)
            if a is None:
                continue
            rows.append({"structure": key[0], "property": key[1], "quantity": quantity, "picked": key in worst,
                         "reference": q["reference"], "before": q["model"], "error_before_pct": q["error_pct"],
                         "after": a["model"], "error_after_pct": a["error_pct"],
                         "ratio": a["error_pct"] / q["error_pct"] if q["error_pct"] else None})
    return {"rows": rows}


COLUMNS = ("structure", "property", "quantity", "picked", "reference", "before", "error_before_pct", "after",
           "error_after_pct", "ratio")


def _cells(row: dict) -> list[str]:
    return [f"{row[c]:.4g}" if isinstance(row[c], float) else ("yes" if row[c] is True else "" if row[c] is False
                                                                  else "-" if row[c] is None else str(row[c]))
            for c in COLUMNS]


def table_markdown(table: dict) -> str:
    """The before/after table as Markdown (errors in %, ratio = error after / error before)."""
    head = ["structure", "property", "quantity", "picked", "reference", "before", "error before (%)", "after",
            "error after (%)", "after / before"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(_cells(r)) + " |" for r in table["rows"]]) + "\n"


def table_csv(table: dict) -> str:
    """The before/after table as CSV, the columns of :data:`COLUMNS`."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    writer.writerows(_cells(r) for r in table["rows"])
    return out.getvalue()
