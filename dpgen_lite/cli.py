"""Command line: ``dpgen run``, ``dpgen init_bulk``, ``dpgen check``, ``dpgen status``, ``dpgen report``,
``dpgen redo``, ``dpgen autotest``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .context import Context, log
from .label.base import get_style
from .train.deepmd import check_backend_installed
from .params import ParamError, load_file
from .record import next_step, truncate_record
from .schema import validate_init_bulk, validate_machine, validate_run


def _setup_logging(work_dir: Path) -> None:
    # milliseconds: step wall times in the report (and the benchmarks) are read off these stamps
    fmt = logging.Formatter("%(asctime)s.%(msecs)03d %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    for handler in (logging.FileHandler(work_dir / "dpgen.log"), logging.StreamHandler(sys.stdout)):
        handler.setFormatter(fmt)
        log.addHandler(handler)
    log.setLevel(logging.INFO)


def load_machine(path: str | None) -> tuple[dict, list[str]]:
    """Validated ``machine.json`` and its notes (empty dict: every stage on the embedded local machine).

    Raises
    ------
    ParamError
        listing every problem of the file.
    """
    if path is None:
        return {}, []
    return validate_machine(load_file(Path(path)), path)


def load_run_param(path: str, work_dir: Path) -> dict:
    """Validated ``param.json`` of ``dpgen run`` (every check, the fp style's included).

    Raises
    ------
    ParamError
        listing every problem found.
    """
    return validate_run(load_file(Path(path)), work_dir, path)[0]


def load_inputs(kind: str, param_path: str, machine_path: str | None, work_dir: Path) -> tuple[dict, dict, list]:
    """Validate a ``param.json`` of ``kind`` (``run`` or ``init_bulk``) and a ``machine.json``;
    every problem of both files is reported at once.

    Raises
    ------
    ParamError
        listing every problem found.
    """
    validate = {"run": validate_run, "init_bulk": validate_init_bulk}[kind]
    problems, param, mdata, notes = [], None, {}, []
    try:
        param, found = validate(load_file(Path(param_path)), work_dir, param_path)
        notes += found
    except ParamError as err:
        problems.append(str(err))
    try:
        mdata, found = load_machine(machine_path)
        notes += found
    except ParamError as err:
        problems.append(str(err))
    if param is not None and mdata is not None and not (mdata.get("train") or {}).get("command"):
        try:  # trained here: the backend's packages must be here
            check_backend_installed(param.get("train_backend", "tensorflow"))
        except ParamError as err:
            problems.append(str(err))
    if param is not None and mdata is not None and param.get("fp_style"):
        try:  # a style without a default command (custom) needs machine.json's fp.command
            if not (mdata.get("fp") or {}).get("command"):
                get_style(param["fp_style"])(param, work_dir).default_command()
        except ParamError as err:
            problems.append(str(err))
    if problems:
        raise ParamError("\n".join(problems))
    return param, mdata, notes


def _log_notes(notes: list[str]) -> None:
    for note in notes:
        log.info("DP-GEN key %s", note)


def cmd_run(args) -> None:
    work_dir = Path.cwd()
    param, mdata, notes = load_inputs("run", args.param, args.machine, work_dir)
    from .scheduler import run_loop
    _setup_logging(work_dir)
    _log_notes(notes)
    run_loop(Context(param, mdata, work_dir))


def cmd_init_bulk(args) -> None:
    from .init_bulk import init_bulk
    work_dir = Path.cwd()
    param, mdata, notes = load_inputs("init_bulk", args.param, args.machine, work_dir)
    _setup_logging(work_dir)
    _log_notes(notes)
    init_bulk(param, mdata, work_dir)


def file_kind(data: dict) -> str:
    """``run``, ``init_bulk`` or ``autotest``: what a ``param.json`` is for, told by its keys."""
    if "properties" in data or "interaction" in data:
        return "autotest"
    if "model_devi_jobs" in data or "sys_configs" in data:
        return "run"
    return "init_bulk"


def cmd_check(args) -> None:
    """Run every validation of the command the file is for; change nothing."""
    work_dir = Path(args.work_dir).resolve()
    kind = args.kind or file_kind(load_file(Path(args.param)))
    if kind == "autotest":
        from .autotest.schema import load_param
        problems = []
        for func in (lambda: load_param(load_file(Path(args.param)), work_dir, args.param),
                     lambda: load_machine(args.machine)):
            try:
                func()
            except ParamError as err:
                problems.append(str(err))
        if problems:
            raise ParamError("\n".join(problems))
        notes = []
    else:
        _, _, notes = load_inputs(kind, args.param, args.machine, work_dir)
    for note in notes:
        print(f"note: DP-GEN key {note}")
    print(f"{args.param}{' and ' + args.machine if args.machine else ''}: valid for dpgen "
          f"{'autotest' if kind == 'autotest' else kind}")


def cmd_status(args) -> None:
    """The next step of a run; with its ``param.json`` (``--param``, default ``FOLDER/param.json``),
    the loop's stop rules too (a loop about to end goes on with the final steps or publishes)."""
    from .scheduler import ALL_STEP_NAMES, next_action
    work_dir = Path(args.work_dir)
    iteration, step = next_step(work_dir)
    why = None
    param_path = Path(args.param) if args.param else work_dir / "param.json"
    if param_path.is_file():
        param, _ = validate_run(load_file(param_path), work_dir, str(param_path))
        iteration, step, why = next_action(Context(param, {}, work_dir))
    name = ALL_STEP_NAMES[step] if step < len(ALL_STEP_NAMES) else "publish (every step done)"
    print(f"next: iteration {iteration} step {step} ({name})" + (f"; the loop has ended: {why}" if why else ""))


def cmd_report(args) -> None:
    """Print the per-iteration table (or ``--json``) of a run folder and write its figures
    under ``--out`` (default ``FOLDER/report``); read only, the run folder is not changed."""
    from .report import collect, figures, table, to_json
    folder = Path(args.folder)
    report = collect(folder)
    written = figures(report, Path(args.out) if args.out else folder / "report")
    print(to_json(report, written) if args.json else table(report, written))


def cmd_redo(args) -> None:
    """Delete the record lines from ``ITER STEP`` on, as a user redoing it by hand does; say
    what the next ``dpgen run`` removes before it redoes them."""
    from .scheduler import ALL_STEP_NAMES
    from .state import check_redo, stale
    work_dir = Path(args.work_dir)
    check_redo(work_dir, args.iteration, args.step)
    try:
        removed = truncate_record(work_dir, args.iteration, args.step)
    except ValueError as err:
        raise ParamError(str(err)) from None
    print(f"record.dpgen: removed {len(removed)} line(s), '{removed[0][0]} {removed[0][1]}' to "
          f"'{removed[-1][0]} {removed[-1][1]}'")
    for item in stale(work_dir, args.iteration, args.step):
        what = " (but the selection files)" if item.keep else ""
        print(f"dpgen run will remove {item.path.relative_to(work_dir)}{what}"
              f"{', cancelling its jobs and removing its remote folder' if item.stage and item.path.is_dir() else ''}")
    print(f"dpgen run redoes iteration {args.iteration} from step {args.step} ({ALL_STEP_NAMES[args.step]}) "
          "with the current param.json and machine.json")


def cmd_specialise(args) -> None:
    """Autotest the final model against the run's fp style, label the worst properties'
    configurations, specialise, Autotest again; print the before/after table."""
    from .train.specialise import Specialise, table_markdown
    work_dir = Path.cwd()
    param, mdata, notes = load_inputs("run", args.param, args.machine, work_dir)
    autotest = Path(args.autotest)
    spec = Specialise(Context(param, mdata, work_dir), load_file(autotest), autotest.resolve().parent,
                      top=args.top, weight=args.weight, guard_weight=args.guard_weight,
                      n_perturb=args.perturb, numb_steps=args.numb_steps, start_lr=args.start_lr,
                      guard_labels=args.guard_labels)
    _setup_logging(work_dir)
    print(table_markdown(spec.run()), end="")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dpgen`` console script; returns the exit code: 2 for bad input,
    1 when too many fp tasks failed or no MD task wrote a frame (the run resumes once the
    cause is fixed)."""
    parser = argparse.ArgumentParser(prog="dpgen", description="concurrent learning of Deep Potential models")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, doc in (("run", cmd_run, "run or resume the concurrent-learning loop"),
                            ("init_bulk", cmd_init_bulk, "build a labelled initial data set of a bulk crystal")):
        p = sub.add_parser(name, help=doc)
        p.add_argument("param", help="param.json or .yaml")
        p.add_argument("machine", nargs="?", default=None, help="machine.json (default: this machine)")
        p.set_defaults(func=func)
    p = sub.add_parser("check", help="validate param.json [machine.json] as run / init_bulk / autotest would; "
                                     "change nothing (exit 0: valid, 2: every problem listed)")
    p.add_argument("param", help="param.json or .yaml")
    p.add_argument("machine", nargs="?", default=None, help="machine.json")
    p.add_argument("--kind", choices=("run", "init_bulk", "autotest"), default=None,
                   help="what the file is for (default: told by its keys)")
    p.add_argument("--work-dir", default=".", help="folder relative paths are resolved against (default: .)")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("status", help="where a run stands")
    p.add_argument("work_dir", nargs="?", default=".")
    p.add_argument("--param", help="the run's param.json (default: WORK_DIR/param.json, when there)")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("report", help="per-iteration table and figures of a run (dpgen_lite or DP-GEN); "
                                      "reads the run folder, writes figures only under --out")
    p.add_argument("folder", nargs="?", default=".", help="run folder (default: .)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    p.add_argument("--out", default=None, help="folder of the PNG figures (default: FOLDER/report)")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("redo", help="redo a run from ITER STEP on (as deleting those lines of record.dpgen)")
    p.add_argument("iteration", type=int, help="iteration (ITER of iter.ITER)")
    p.add_argument("step", type=int, help="step: 0-8 of the loop (DP-GEN's numbers), 9-16 of the final stage")
    p.add_argument("work_dir", nargs="?", default=".")
    p.set_defaults(func=cmd_redo)
    p = sub.add_parser("specialise", help="after the run: Autotest the final model against the fp style, label "
                                          "the worst properties' configurations, specialise, Autotest again")
    p.add_argument("param", help="the run's param.json or .yaml")
    p.add_argument("machine", nargs="?", default=None, help="machine.json (default: this machine)")
    p.add_argument("--autotest", required=True, help="Autotest file: structures, relaxation, properties "
                                                      "(no interaction: the fp style and the final model are set)")
    p.add_argument("--top", type=int, default=2, help="how many of the worst properties are picked (default 2)")
    p.add_argument("--weight", type=float, default=10.0, help="sampling weight of a new frame relative to a "
                                                               "regular one (default 10)")
    p.add_argument("--guard-weight", type=float, default=10.0, help="that of a frame of the other properties, "
                                                                     "labelled so that they stay right (default 10; 0: "
                                                                     "not labelled)")
    p.add_argument("--guard-labels", default="model", help="who labels the other properties' configurations: "
                                                            "model (the final model's own predictions, default) "
                                                            "or fp (the run's fp style)")
    p.add_argument("--perturb", type=int, default=3, help="randomly displaced copies (~0.03 Å) labelled besides "
                                                          "each configuration (default 3)")
    p.add_argument("--numb-steps", type=int, default=None, help="training steps (default: final_training's "
                                                                "special_numb_steps)")
    p.add_argument("--start-lr", type=float, default=None, help="start learning rate (default: final_training's "
                                                                "special_start_lr)")
    p.set_defaults(func=cmd_specialise)
    from .autotest.cli import add_parser as add_autotest
    add_autotest(sub)
    args = parser.parse_args(argv)
    from .explore.outcome import NoMDFrames
    from .stages import StageNotConverged
    from .label.stage import TooManyFailedFpTasks
    try:
        args.func(args)
    except ParamError as err:
        print(f"dpgen: error: {err}", file=sys.stderr)
        return 2
    except (TooManyFailedFpTasks, NoMDFrames, StageNotConverged) as err:
        log.error("%s", err)
        print(f"dpgen: stopped: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
