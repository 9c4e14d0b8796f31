"""Schemas of ``param.json`` and ``machine.json`` (dargs), and the cross-key checks.

Only the top-level keys live here.  The keys of an fp style, an exploration engine and the
training stage are declared by their owners (``args()``) and put together here: the
``fp_style`` and ``model_devi_engine`` variants are built from the registered plugins.
DP-GEN keys that dpgen_lite ignores or refuses are screened first (:mod:`.compat`).

Everything is checked before any work starts.  :func:`validate_run` collects every
problem it can find (independent checks go on after one fails) and raises one
:class:`ParamError` listing them all, each naming the key, the value and what is allowed.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path

from dargs import Argument, Variant
from dargs.dargs import ArgumentError

from .compat import MACHINE_IGNORED, REFUSED_ENGINES, REFUSED_FP_STYLES, screen, stage_section
from .crosscheck import check_mass_map, check_sel, check_training_template
from .explore.base import ENGINES
from .explore.configs import check_configs
from .label.bad_box import parse_skip_bad_box
from .label.base import FP_STYLES
from .params import ParamError, arg, normalize, require
from .train.data import check_init_data
from .train.final import check_final, final_training_args
from .train.model_test import check_test_data, test_args
from .select.rules.base import pick_args
from .train.stage import check_train, train_args

STAGES = ("train", "model_devi", "fp")


def fp_variant() -> Variant:
    """``fp_style``: one choice per registered fp style, with the style's own keys."""
    FP_STYLES.load()
    return Variant("fp_style", [Argument(name, dict, sub_fields=cls.args(), doc=(cls.__doc__ or "").strip())
                                for name, cls in sorted(FP_STYLES.items())], doc="labelling program")


def engine_variant() -> Variant:
    """``model_devi_engine``: one choice per registered exploration engine (default ``lammps``)."""
    ENGINES.load()
    return Variant("model_devi_engine", [Argument(name, dict, sub_fields=cls.args()) for name, cls in
                                         sorted(ENGINES.items())], optional=True, default_tag="lammps",
                   doc="exploration program")


def fp_shared_args() -> list[Argument]:
    """Keys read by the fp stage whatever the style."""
    return [
        arg("ratio_failed", float, "largest tolerated share of failed fp tasks", default=0.2),
        arg("fp_skip_bad_box", str, "skip candidates with a degenerate box, e.g. 'length_ratio:5;height_ratio:5'",
            default=None, extra_check=lambda v: v is None or bool(parse_skip_bad_box(v))),
    ]


def run_args() -> Argument:
    """Schema of ``param.json`` for ``dpgen run``."""
    fields = [
        arg("type_map", list, "element of each atom type"),
        arg("mass_map", [list, str], "atomic masses in type_map order, g/mol; 'auto' takes ASE's", default="auto"),
        arg("mass_map_check", bool, "compare mass_map with the element masses of type_map: a mass that is "
            "another type_map element's (swapped order) is an error; false: the masses are intended", default=True),
        arg("init_data_prefix", str, "folder prepended to init_data_sys", default=""),
        arg("init_data_sys", list, "initial training data: deepmd/npy folders, folders of them, or HDF5 files"),
        arg("sys_configs_prefix", str, "folder prepended to sys_configs", default=""),
        arg("sys_configs", list, "per system, a list of glob patterns of starting configurations"),
        arg("sys_format", str, "dpdata format of the configurations", default="vasp/poscar"),
        *train_args(),
        arg("fp_task_max", int, "most fp tasks per system and iteration"),
        arg("fp_task_min", int, "fewer candidates than this: no fp task", default=0),
        arg("fp_accurate_threshold", float, "accurate ratio above which nothing is labelled", default=1.0),
        arg("fp_accurate_soft_threshold", float, "accurate ratio from which fp_task_max scales down", default=1.0),
        arg("convergence_accurate_ratio", float,
            "stop once an iteration's accurate ratio (all systems) reaches this; null: run every job",
            default=None),
        arg("random_seed", int, "the run's seed: candidate pick, model seeds (descriptor, fitting net, "
            "training) and MD initial velocities; another value gives an independent run", default=2020),
        *test_args(),
        pick_args(),
        final_training_args(),
        *fp_shared_args(),
    ]
    return Argument("param", dict, sub_fields=fields, sub_variants=[fp_variant(), engine_variant()])


def _all_fp_keys() -> dict[str, set[str]]:
    FP_STYLES.load()
    return {name: {a.name for a in cls.args()} for name, cls in FP_STYLES.items()}


def screen_fp(data: dict) -> tuple[dict, list[str], list[str]]:
    """:func:`.compat.screen` with the registered fp styles' keys, and an unknown ``fp_style`` or
    ``model_devi_engine`` named with the allowed values."""
    keys = _all_fp_keys()
    own = keys.get(data.get("fp_style"), set())
    data, notes, errors = screen(data, own, set().union(*keys.values()))
    for key, registry, refused in (("fp_style", FP_STYLES, REFUSED_FP_STYLES),
                                   ("model_devi_engine", ENGINES, REFUSED_ENGINES)):
        value = data.get(key)
        if key in data and value not in registry.load() and value not in refused:
            close = difflib.get_close_matches(str(value), list(registry), n=1)
            errors.append(f"{key} = {value!r}: allowed {', '.join(sorted(registry))}"
                          + (f"; did you mean {close[0]!r}?" if close else ""))
    return data, notes, errors


class Problems:
    """Collects the messages of independent checks, so that all are reported at once."""

    def __init__(self, messages: list[str] = ()):
        self.messages = list(messages)

    def run(self, check: Callable[[], object]) -> None:
        """Run ``check``; keep its ParamError message and go on."""
        try:
            check()
        except ParamError as err:
            self.messages.append(str(err))

    def raise_if_any(self, name: str) -> None:
        """Raise one ParamError listing every message, under the file's ``name``.

        Raises
        ------
        ParamError
            if any check failed.
        """
        if self.messages:
            lines = "\n".join(f"  - {m}" for m in self.messages)
            raise ParamError(f"{name}: {len(self.messages)} problem(s):\n{lines}")


def validate_run(data: dict, base_dir: Path, name: str = "param.json") -> tuple[dict, list[str]]:
    """Every check of ``dpgen run`` on a ``param.json``'s content; returns the normalized
    parameters and the notes on ignored DP-GEN keys (for the log).

    Raises
    ------
    ParamError
        listing every problem found.
    """
    data, notes, errors = screen_fp(data)
    problems = Problems(errors)
    param = None
    try:
        if any(e.startswith(("fp_style =", "model_devi_engine =", "model_devi_jobs[")) for e in errors):
            # the variants cannot be checked without a known fp_style and engine, nor refused jobs
            raise ParamError("")
        param = normalize(run_args(), data, name)
    except ParamError as err:
        if str(err):
            problems.messages.append(str(err).removeprefix(f"{name}: "))
    if param is not None:
        check_run_param(param, base_dir, problems)
    problems.raise_if_any(name)
    return param, notes


def check_run_param(param: dict, base_dir: Path, problems: Problems | None = None) -> None:
    """Cross-key checks of a normalized ``param.json`` (files exist, indices in range, ...).

    Raises
    ------
    ParamError
        for the first problem found, unless ``problems`` collects them.
    """
    own = problems is None
    problems = problems or Problems()
    type_map = param["type_map"]
    mass_map = param["mass_map"]
    problems.run(lambda: require(mass_map == "auto" or len(mass_map) == len(type_map),
                                 f"mass_map = {mass_map}: needs one mass per type_map entry ({len(type_map)}), or 'auto'"))
    problems.run(lambda: check_train(param, base_dir))
    problems.run(lambda: check_mass_map(param))
    problems.run(lambda: check_training_template(param))
    problems.run(lambda: check_model_type_map(param))
    problems.run(lambda: check_thresholds(param))
    problems.run(lambda: check_fp_style(param, base_dir))
    problems.run(lambda: check_init_data(param, base_dir))
    if param["final_training"] is not None:
        problems.run(lambda: check_final(param["final_training"], param, base_dir))
    problems.run(lambda: check_configs(param, base_dir))
    problems.run(lambda: check_sel(param, base_dir))
    problems.run(lambda: check_test_data(param, base_dir))
    problems.run(lambda: ENGINES.get(param["model_devi_engine"]).check(param, len(param["sys_configs"])))
    problems.run(lambda: ENGINES.get(param["model_devi_engine"]).check_files(param, base_dir))
    if own:
        if problems.messages:
            raise ParamError(problems.messages[0] if len(problems.messages) == 1 else "\n".join(problems.messages))


def check_model_type_map(param: dict) -> None:
    """``default_training_param.model.type_map``, where given, is the top-level ``type_map``:
    another order would run MD with the species swapped."""
    model_map = (param["default_training_param"].get("model") or {}).get("type_map")
    require(model_map is None or list(model_map) == list(param["type_map"]),
            f"default_training_param.model.type_map = {model_map} differs from type_map = {param['type_map']}: "
            "the models would see the species in another order; make them equal (or remove the model's, "
            "which is then filled in from type_map)")


def check_thresholds(param: dict) -> None:
    """Ratios in [0, 1], soft <= hard accurate threshold, 0 <= fp_task_min <= fp_task_max."""
    for key in ("fp_accurate_threshold", "fp_accurate_soft_threshold", "ratio_failed"):
        require(0 <= param[key] <= 1, f"{key} = {param[key]}: must lie in [0, 1]")
    require(param["fp_accurate_soft_threshold"] <= param["fp_accurate_threshold"],
            f"fp_accurate_soft_threshold = {param['fp_accurate_soft_threshold']} exceeds "
            f"fp_accurate_threshold = {param['fp_accurate_threshold']}")
    require(0 <= param["fp_task_min"] <= param["fp_task_max"],
            f"fp_task_min = {param['fp_task_min']}, fp_task_max = {param['fp_task_max']}: need 0 <= min <= max")
    conv = param["convergence_accurate_ratio"]
    require(conv is None or 0 < conv <= 1, f"convergence_accurate_ratio = {conv}: must lie in (0, 1] or be null")


def check_fp_style(param: dict, base_dir: Path) -> None:
    """The fp style accepts its keys (pseudopotentials, templates, calculator, ...).

    Raises
    ------
    ParamError
        with the style's message.
    """
    from .label.base import get_style
    try:
        get_style(param["fp_style"])(param, base_dir).check()
    except (KeyError, ValueError) as err:
        raise ParamError(str(err.args[0])) from None


def init_bulk_args(with_fp_style: bool = True) -> Argument:
    """Schema of ``param.json`` for ``dpgen init_bulk``: its own keys and, with ``fp_style``, the
    style's (DP-GEN's files name no ``fp_style``: their program is ``init_fp_style``)."""
    from .init_bulk import init_bulk_args as own
    return Argument("param", dict, sub_fields=[*own(), *fp_shared_args()],
                    sub_variants=[fp_variant()] if with_fp_style else [])


def validate_init_bulk(data: dict, base_dir: Path, name: str = "init.json") -> tuple[dict, list[str]]:
    """Every check of ``dpgen init_bulk``; returns the normalized parameters (defaults of the
    route filled in) and the notes.

    Raises
    ------
    ParamError
        listing every problem found.
    """
    data, notes, errors = screen_fp(data)
    problems = Problems(errors)
    param = None
    try:
        if errors and any(e.startswith("fp_style =") for e in errors):
            raise ParamError("")  # the fp variant cannot be checked without a known style
        param = normalize(init_bulk_args("fp_style" in data), data, name)
    except ParamError as err:
        if str(err):
            problems.messages.append(str(err).removeprefix(f"{name}: "))
    if param is not None:
        from .init_bulk import check_init_bulk  # checks the fp style of each route too
        try:
            param = check_init_bulk(param, base_dir)
        except ParamError as err:
            problems.messages.append(str(err))
    problems.raise_if_any(name)
    return param, notes


def machine_args() -> Argument:
    """Schema of ``machine.json`` (DP-GEN's api_version 1.0 layout)."""
    stage = [
        arg("command", str, "program of the stage (dp, lmp, or the full fp command)", default=None),
        arg("machine", dict, "dpdispatcher machine"),
        arg("resources", dict, "dpdispatcher resources"),
        arg("user_forward_files", list, "extra files sent with each task", default=[]),
        arg("user_backward_files", list, "extra files fetched from each task", default=[]),
        arg("check_interval", [int, float], "seconds between job status checks", default=30),
    ]
    fields = [
        arg("api_version", str, "machine file format, '1.0'", default="1.0"),
        *(arg(s, dict, f"where the {s} stage runs", default=None, sub_fields=stage) for s in STAGES),
    ]
    return Argument("machine", dict, sub_fields=fields)


def validate_machine(data: dict, name: str = "machine.json") -> tuple[dict, list[str]]:
    """Every check of a ``machine.json``: DP-GEN's api_version 1.0 layout, a stage given as a
    list (DP-GEN takes its first entry), ``_comment`` keys anywhere, then each stage's
    ``machine`` and ``resources`` against dpdispatcher's own schemas.

    Raises
    ------
    ParamError
        naming the stage and the offending key; for DP-GEN's old layout (before api_version 1.0).
    """
    notes = []
    if not isinstance(data, dict):
        raise ParamError(f"{name}: a machine file is a JSON object with train, model_devi and fp sections")
    version = str(data.get("api_version", "1.0"))
    old = sorted(k for k in data if k.endswith(("_machine", "_resources")))
    if version.split(".")[0] != "1" or old:
        raise ParamError(f"{name}: api_version = {version!r}{', keys ' + ', '.join(old) if old else ''}: only "
                         "DP-GEN's api_version 1.0 layout is read (one section per stage: train, model_devi, fp, "
                         "each with command, machine, resources); see machines/README.md")
    data = strip_comments(data)
    for stage in STAGES:
        if isinstance(data.get(stage), (list, tuple)):
            if len(data[stage]) > 1:
                notes.append(f"{stage}: a list of {len(data[stage])} machines; the first one is used (as DP-GEN)")
            data[stage] = stage_section(data, stage)
        if isinstance(data.get(stage), dict):
            for key in set(data[stage]) & set(MACHINE_IGNORED):
                notes.append(f"{stage}.{key}: ignored ({MACHINE_IGNORED[key]})")
                data[stage] = {k: v for k, v in data[stage].items() if k != key}
    if "deepmd_version" in data:
        notes.append(f"deepmd_version = {data.pop('deepmd_version')!r}: ignored (dpgen_lite runs deepmd-kit 3)")
    mdata = normalize(machine_args(), data, name)
    problems = Problems()
    for stage in STAGES:
        if mdata.get(stage) is not None:
            problems.run(lambda stage=stage: check_stage(stage, mdata[stage], name))
    problems.raise_if_any(name)
    return mdata, notes


def strip_comments(data):
    """``data`` without the keys starting with ``_`` (comments, as dpdispatcher and DP-GEN allow), at any depth."""
    if isinstance(data, dict):
        return {k: strip_comments(v) for k, v in data.items() if not str(k).startswith("_")}
    if isinstance(data, list):
        return [strip_comments(v) for v in data]
    return data


def check_stage(stage: str, conf: dict, name: str) -> None:
    """One stage's ``machine`` and ``resources`` against dpdispatcher's schemas (comments dropped).

    Raises
    ------
    ParamError
        naming the stage and the key.
    """
    from .dispatch import _import_dpdispatcher
    dpd = _import_dpdispatcher()
    resources = {"batch_type": conf["machine"].get("batch_type"), **conf["resources"]}
    for key, cls, value in (("machine", dpd.Machine, conf["machine"]), ("resources", dpd.Resources, resources)):
        try:
            cls.arginfo().check_value(cls.arginfo().normalize_value(value), strict=True)
        except (ArgumentError, KeyError, TypeError, ValueError) as err:
            raise ParamError(f"{name}, {stage}.{key}: {err}") from None
