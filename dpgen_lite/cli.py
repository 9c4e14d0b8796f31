"""Command line: ``dpgen run``, ``dpgen init_bulk``, ``dpgen status``, ``dpgen autotest``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .context import Context, log
from .record import STEP_NAMES, next_step
from .schema import (ParamError, check_fp_style, check_machine, check_run_param, init_bulk_args, load_file,
                     machine_args, normalize, run_args)


def _setup_logging(work_dir: Path) -> None:
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    for handler in (logging.FileHandler(work_dir / "dpgen.log"), logging.StreamHandler(sys.stdout)):
        handler.setFormatter(fmt)
        log.addHandler(handler)
    log.setLevel(logging.INFO)


def load_machine(path: str | None) -> dict:
    """Validated ``machine.json`` (empty dict: every stage on the embedded local machine)."""
    if path is None:
        return {}
    mdata = normalize(machine_args(), load_file(Path(path)), path)
    check_machine(mdata)
    return mdata


def load_run_param(path: str, work_dir: Path) -> dict:
    """Validated ``param.json`` of ``dpgen run`` (all checks, fp style's included).

    Raises
    ------
    ParamError
        for the first problem found.
    """
    param = normalize(run_args(), load_file(Path(path)), path)
    check_run_param(param, work_dir)
    return param


def cmd_run(args) -> None:
    work_dir = Path.cwd()
    param = load_run_param(args.param, work_dir)
    mdata = load_machine(args.machine)
    from .scheduler import run_loop
    _setup_logging(work_dir)
    run_loop(Context(param, mdata, work_dir))


def cmd_init_bulk(args) -> None:
    from .init_bulk import init_bulk
    work_dir = Path.cwd()
    param = normalize(init_bulk_args(), load_file(Path(args.param)), args.param)
    check_fp_style(param, work_dir)
    mdata = load_machine(args.machine)
    _setup_logging(work_dir)
    init_bulk(param, mdata, work_dir)


def cmd_status(args) -> None:
    work_dir = Path(args.work_dir)
    iteration, step = next_step(work_dir)
    print(f"next: iteration {iteration} step {step} ({STEP_NAMES[step]})")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dpgen`` console script; returns the exit code: 2 for bad input,
    1 when too many fp tasks failed (the run resumes once the cause is fixed)."""
    parser = argparse.ArgumentParser(prog="dpgen", description="concurrent learning of Deep Potential models")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, doc in (("run", cmd_run, "run or resume the concurrent-learning loop"),
                            ("init_bulk", cmd_init_bulk, "build a labelled initial data set of a bulk crystal")):
        p = sub.add_parser(name, help=doc)
        p.add_argument("param", help="param.json or .yaml")
        p.add_argument("machine", nargs="?", default=None, help="machine.json (default: this machine)")
        p.set_defaults(func=func)
    p = sub.add_parser("status", help="where a run stands")
    p.add_argument("work_dir", nargs="?", default=".")
    p.set_defaults(func=cmd_status)
    from .autotest.cli import add_parser as add_autotest
    add_autotest(sub)
    args = parser.parse_args(argv)
    from .label.stage import TooManyFailedFpTasks
    try:
        args.func(args)
    except ParamError as err:
        print(f"dpgen: error: {err}", file=sys.stderr)
        return 2
    except TooManyFailedFpTasks as err:
        log.error("%s", err)
        print(f"dpgen: stopped: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
