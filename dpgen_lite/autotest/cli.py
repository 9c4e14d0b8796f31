"""``dpgen autotest make|run|post|all param.json [machine.json]`` and ``dpgen autotest compare``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..params import ParamError, load_file
from .task import TaskFailed


def add_parser(sub) -> None:
    """Add the ``autotest`` subcommand to the ``dpgen`` argparse subparsers ``sub``."""
    p = sub.add_parser("autotest", help="material properties of a potential, compared with a reference")
    p.add_argument("action", choices=("make", "run", "post", "all", "compare"),
                   help="make/run/post one step (relaxation first, then properties); all: everything; "
                        "compare: tabulate results")
    p.add_argument("inputs", nargs="+", help="param.json [machine.json]; for compare: [label=]result.json "
                                             "or work folders")
    p.add_argument("--step", choices=("relaxation", "properties"), default=None,
                   help="step of make/run/post (default: relaxation until it is posted, then properties)")
    p.add_argument("--work-dir", default=".", help="folder the structures are relative to (default: .)")
    p.add_argument("--ref", default=None, help="compare: label of the reference (default: the first)")
    p.add_argument("--plot-dir", default=None, help="compare: folder for compare.out, compare.md, compare.csv and "
                                                    "the PNG plots")
    p.set_defaults(func=main)


def _compare(results, ref, out_dir) -> str:
    """The comparison table as text; with ``out_dir``, also written there as text, Markdown and
    CSV, with the plots (:mod:`.compare`)."""
    from .compare import compare_plots, compare_table, write_tables
    text = compare_table(results, ref)
    if out_dir:
        for path in [*write_tables(results, ref, Path(out_dir)), *compare_plots(results, Path(out_dir))]:
            text += f"written: {path}\n"
    return text


def main(args) -> None:
    """Run the ``autotest`` action of parsed ``args``.

    Raises
    ------
    ParamError
        for bad input (before any task runs) or a failed task (its folder named).
    """
    from ..cli import load_machine
    from .compare import load_result
    if args.action == "compare":
        print(_compare([load_result(s) for s in args.inputs], args.ref, args.plot_dir), end="")
        return
    from .schema import load_param
    from .workflow import Autotest
    if len(args.inputs) > 2:
        raise ParamError(f"autotest {args.action}: expected param.json [machine.json], got {args.inputs}")
    work_dir = Path(args.work_dir).resolve()
    param = load_param(load_file(Path(args.inputs[0])), work_dir, args.inputs[0])
    mdata, _ = load_machine(args.inputs[1] if len(args.inputs) > 1 else None)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    at = Autotest(param, work_dir, mdata)
    try:
        if args.action == "all":
            at.all()
        else:
            step = args.step or at.next_step()
            getattr(at, args.action)(step)
            print(f"autotest {args.action} {step}: done")
    except TaskFailed as err:
        raise ParamError(f"task failed: {err}") from None
    if args.action in ("all", "post") and (len(at.runs) > 1 or param["reference"]):
        results = [(inter["name"], json.loads((root / "result.json").read_text()))
                   for inter, _, root in at.runs]
        ref = param["reference"]
        if ref and ref not in [r[0] for r in results]:
            results.insert(0, load_result(str(work_dir / ref)))
            ref = results[0][0]
        text = _compare(results, ref, work_dir / "compare")
        (work_dir / "compare.out").write_text(text)
        print(text, end="")
