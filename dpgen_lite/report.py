"""``dpgen report``: what a run did, per iteration, as a table, a JSON document and PNG figures.

Everything is read from the run folder's files (``record.dpgen``, ``dpgen.log``,
``iter.*/02.fp/selection.json`` or the ``candidate/rest_*.shuffled.*.out`` lists,
``iter.*/02.fp/data.*`` labels, ``iter.*/01.model_devi/task.*/model_devi.out``,
``iter.*/00.train/model_test.json``, ``final/model_test.json``, ``models/manifest.json``);
nothing there is changed.  Missing files (a run still going, a run of DP-GEN itself, which
writes no ``selection.json`` and logs in another format) leave their fields ``None``.

Units: deviations and trust levels in eV/Å (dimensionless with relative deviations), wall
times in s, test errors in meV/atom (energy, virial) and meV/Å (force).

:func:`collect` reads, :func:`table` and :func:`to_json` format, :func:`figures` draws.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import numpy as np

from .params import ParamError
from .record import STEP_NAMES, read_json, read_record

#: most max_devi_f values kept per iteration for the distribution figure (evenly subsampled)
MAX_DEVI_SAMPLES = 100_000
GROUPS = {"train": range(0, 3), "md": range(3, 6), "fp": range(6, 9), "final": range(9, 17)}
KINDS = ("candidate", "accurate", "failed")
FIGURES = ("ratios.png", "labels.png", "walltime.png", "model_devi.png", "test_rmse.png", "devi_vs_error.png")

_ITER_DIR = re.compile(r"^iter\.(\d{6})$")
_LITE_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{3})?) ([A-Z]+) (.*)$")
_DPGEN_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d+) - ([A-Z]+) : (.*)$")
_LITE_STEP = re.compile(r"^iter (\d+) step (\d+): (\w+)")
_DPGEN_STEP = re.compile(r"^-+iter\.(\d+) task (\d+)-+$")
_RESUME = ("resuming at iteration", "continue from iter", "start running")


# ---------------------------------------------------------------- reading

def collect(folder: Path) -> dict:
    """Read a run folder (of dpgen_lite or of DP-GEN) into a report; change nothing.

    Returns
    -------
    dict
        ``folder``, ``kind`` (``"dpgen_lite"`` or ``"dpgen"``), ``status`` (``"finished"``,
        ``"loop ended"``, ``"stopped"`` or ``"running"``), ``stop_reason`` (a sentence),
        ``next_step`` (``[iteration, step, name]`` or None when finished), ``log_end``
        (time of the log's last line), ``iterations`` (one dict per iteration, see
        :func:`_iteration`), ``final`` (``walltime_s``, ``model_test`` of ``final/model_test.json``),
        ``manifest`` (``models/manifest.json`` or None) and ``arrays`` (not JSON: per iteration
        ``max_devi_f``, a 1-d array of at most :data:`MAX_DEVI_SAMPLES` force deviations in eV/Å,
        and ``devi_vs_error``, ``(max_devi_f, max_error_f)`` arrays of the tested frames in eV/Å).

    Raises
    ------
    ParamError
        if ``folder`` is not a folder, or holds neither ``record.dpgen``, ``dpgen.log`` nor ``iter.*``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ParamError(f"{folder}: no such folder")
    iter_dirs = {int(m.group(1)): p for p in folder.iterdir() if p.is_dir() and (m := _ITER_DIR.match(p.name))}
    record = read_record(folder)
    if not (iter_dirs or record or (folder / "dpgen.log").is_file()):
        raise ParamError(f"{folder}: not a run folder (no record.dpgen, dpgen.log or iter.* folder)")
    log = parse_log(folder / "dpgen.log")
    param = read_json(folder / "param.json") if (folder / "param.json").is_file() else None
    numbers = sorted(set(iter_dirs) | {i for i, s in record if s < 9} | {i for i, s in log["steps"] if s < 9})
    report = {"folder": str(folder), "kind": "dpgen", "iterations": [],
              "arrays": {"max_devi_f": {}, "devi_vs_error": {}}}
    total = 0
    for i in numbers:
        it = _iteration(folder, i, record, log, param if isinstance(param, dict) else None, report["arrays"])
        total += it["labels_added"]
        it["labels_total"] = total
        report["iterations"].append(it)
        if it["source"] == "selection.json":
            report["kind"] = "dpgen_lite"
    if log["format"] == "dpgen_lite":
        report["kind"] = "dpgen_lite"
    final_test = read_json(folder / "final" / "model_test.json")
    report["final"] = {"walltime_s": _group_time(log["durations"], None, GROUPS["final"]),
                       "model_test": final_test if isinstance(final_test, dict) else None}
    report["manifest"] = read_json(folder / "models" / "manifest.json")
    report["log_end"] = log["end"]
    report.update(_stop(record, log, report["manifest"]))
    return report


def parse_log(path: Path) -> dict:
    """Parse a ``dpgen.log`` of dpgen_lite (``2026-11-22 20:52:21.042 INFO iter 000000 step 0: ...``;
    older runs stamped whole seconds)
    or of DP-GEN (``2023-01-01 10:00:00,123 - INFO : ----iter.000000 task 03----``).

    A step runs from its start line to the next step start, ``loop ended`` or ``finished``
    line; when the run was restarted (``resuming at``, ``continue from``, ``start running``)
    to the last line before the restart; the step still running to the log's last line.  A
    step started several times (restarts, ``dpgen redo``) sums its times.

    Returns
    -------
    dict
        ``format`` (``"dpgen_lite"``, ``"dpgen"`` or None without a log), ``steps`` (the
        ``(iteration, step)`` started, in order), ``durations`` (``{(iteration, step): s}``),
        ``running`` (the step open at the log's end or None), ``loop_ended`` (the reason of
        ``loop ended: ...`` or None), ``finished`` (the message of the ``finished`` line or
        None), ``last_level``/``last_message`` of the last line and ``end`` (its time, ISO).
    """
    out = {"format": None, "steps": [], "durations": {}, "running": None, "loop_ended": None,
           "finished": None, "last_level": None, "last_message": None, "end": None}
    if not Path(path).is_file():
        return out
    open_step, prev_t = None, None

    def close(t):
        nonlocal open_step
        if open_step is not None:
            key, t0 = open_step
            out["durations"][key] = out["durations"].get(key, 0.0) + max((t - t0).total_seconds(), 0.0)
            open_step = None

    with open(path, errors="replace") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if m := _LITE_LINE.match(line):
                t, level, msg, fmt = datetime.fromisoformat(m.group(1)), m.group(2), m.group(3), "dpgen_lite"
                step = _LITE_STEP.match(msg)
            elif m := _DPGEN_LINE.match(line):
                t = datetime.fromisoformat(m.group(1)).replace(microsecond=1000 * int(m.group(2)[:3].ljust(3, "0")))
                level, msg, fmt = m.group(3), m.group(4).strip(), "dpgen"
                step = _DPGEN_STEP.match(msg)
            else:
                continue  # continuation of a multi-line message
            out["format"] = out["format"] or fmt
            if step:
                close(t)
                key = (int(step.group(1)), int(step.group(2)))
                out["steps"].append(key)
                open_step = (key, t)
                out["finished"] = None  # an end logged before belongs to an earlier run (redone since)
                if key[1] < 9:
                    out["loop_ended"] = None
            elif msg.startswith(_RESUME):
                close(prev_t or t)
            elif msg.startswith("loop ended: "):
                close(t)
                out["loop_ended"] = msg[len("loop ended: "):]
            elif msg == "finished" or msg.startswith("finished: "):
                close(t)
                out["finished"] = msg
            prev_t = t
            out["last_level"], out["last_message"] = level, msg
    if open_step is not None:
        out["running"] = open_step[0]
        close(prev_t)
    out["end"] = prev_t.isoformat(sep=" ") if prev_t else None
    return out


def _iteration(folder: Path, i: int, record: list, log: dict, param: dict | None, arrays: dict) -> dict:
    """One iteration of the report: ``iteration``, ``steps_done`` (recorded steps 0-8),
    ``walltime_s`` (``train``/``md``/``fp`` in s, None when no step of the group is in the log),
    ``step_walltime_s`` ({step: s}), ``source`` of the counts (``selection.json``,
    ``shuffled.out`` or None), ``trust_levels`` (``f_lo``, ``f_hi``, ``v_lo``, ``v_hi``; eV/Å, eV),
    ``accurate_ratio`` / ``candidate_ratio`` / ``failed_ratio`` over all systems, ``converged``,
    ``systems`` (one dict per system: counts, ratios, ``labels`` and ``held_out`` frames),
    ``labels_added``, ``md_tasks``, ``failed_md_tasks``, ``fp_tasks``, ``fp_failed``,
    ``model_devi`` (``n_frames``, ``n_nan``, ``n_sampled``, ``quantiles`` of max_devi_f in
    eV/Å or None) and ``model_test`` (see :func:`_model_test`)."""
    it_dir = folder / f"iter.{i:06d}"
    fp = it_dir / "02.fp"
    it = {"iteration": i, "steps_done": sorted(s for j, s in record if j == i and s < 9),
          "walltime_s": {g: _group_time(log["durations"], i, GROUPS[g]) for g in ("train", "md", "fp")},
          "step_walltime_s": {s: round(t, 3) for (j, s), t in sorted(log["durations"].items()) if j == i and s < 9}}
    sel = read_json(fp / "selection.json") if (fp / "selection.json").is_file() else None
    systems: dict[str, dict] = {}
    if isinstance(sel, dict):
        it["source"] = "selection.json"
        for name, entry in sel.get("systems", {}).items():
            systems[name] = {k: entry.get(k) for k in KINDS + tuple(f"{k}_ratio" for k in KINDS)}
            systems[name]["trust_levels"] = entry.get("trust_levels")
        it["trust_levels"] = sel.get("trust_levels")
        it["converged"] = sel.get("converged")
        it["failed_md_tasks"] = len(sel.get("failed_md_tasks") or [])
    else:
        names = sorted({p.name.split(".")[2] for p in fp.glob("*.shuffled.*.out")}) if fp.is_dir() else []
        it["source"] = "shuffled.out" if names else None
        for name in names:
            counts = {k: _count_lines(fp / f"{'candidate' if k == 'candidate' else 'rest_' + k}.shuffled.{name}.out")
                      for k in KINDS}
            n = sum(c or 0 for c in counts.values())
            systems[name] = {**counts, **{f"{k}_ratio": (c or 0) / n if n else None for k, c in counts.items()},
                             "trust_levels": None}
        it["trust_levels"] = _param_trust(param, i)
        it["converged"] = None
        it["failed_md_tasks"] = None
    for prefix, key in (("data", "labels"), ("valid", "held_out")):
        for d in sorted(d for d in fp.glob(f"{prefix}.*") if d.is_dir()) if fp.is_dir() else []:
            name = d.name.split(".", 1)[1]
            systems.setdefault(name, {**{k: None for k in KINDS}, **{f"{k}_ratio": None for k in KINDS},
                                      "trust_levels": None})[key] = count_frames(d)
    it["systems"] = [{"system": name, "labels": 0, "held_out": 0, **entry} for name, entry in sorted(systems.items())]
    totals = {k: sum(s[k] or 0 for s in it["systems"]) for k in KINDS}
    n = sum(totals.values())
    for k in KINDS:
        it[f"{k}_ratio"] = totals[k] / n if n and it["source"] else None
    it["labels_added"] = sum(s["labels"] for s in it["systems"])
    it["labels_total"] = None  # cumulative, set by collect
    it["fp_tasks"] = len([p for p in fp.glob("task.*") if p.is_dir()]) if fp.is_dir() else 0
    fp_report = read_json(fp / "fp_report.json") if (fp / "fp_report.json").is_file() else None
    it["fp_failed"] = len(fp_report.get("failed", [])) if isinstance(fp_report, dict) else None
    tasks = sorted(p for p in (it_dir / "01.model_devi").glob("task.*") if p.is_dir())
    it["md_tasks"] = len(tasks)
    devi, n_frames, n_nan = max_devi_f([t / "model_devi.out" for t in tasks])
    if n_frames:
        arrays["max_devi_f"][i] = devi
        q = np.quantile(devi, [0.0, 0.5, 0.9, 0.99, 1.0]) if devi.size else [None] * 5
        it["model_devi"] = {"n_frames": n_frames, "n_nan": n_nan, "n_sampled": int(devi.size),
                            "quantiles": dict(zip(("min", "p50", "p90", "p99", "max"),
                                                  [None if v is None else float(v) for v in q]))}
    else:
        it["model_devi"] = None
    it["model_test"] = _model_test(it_dir / "00.train" / "model_test.json", i, arrays)
    return it


def count_frames(path: Path) -> int:
    """Frames of a deepmd/npy folder: the rows of every ``set.*/coord.npy`` below ``path``
    (sub-folders per composition included); unreadable arrays count 0."""
    n = 0
    for coord in Path(path).rglob("coord.npy"):
        if coord.parent.name.startswith("set."):
            try:
                n += int(np.load(coord, mmap_mode="r").shape[0])
            except (OSError, ValueError, IndexError):
                pass
    return n


def max_devi_f(paths: list[Path], cap: int = MAX_DEVI_SAMPLES) -> tuple[np.ndarray, int, int]:
    """The max force deviations (column 4, eV/Å) of ``model_devi.out`` files, streamed.

    Returns
    -------
    tuple
        ``(values, n_frames, n_nan)``: a 1-d array of at most ``cap`` finite values, every
        2^k-th frame of the files in order (even subsampling, memory O(cap)); the number of
        frames read and of NaN deviations.  Missing or unreadable files are skipped.
    """
    from .select.model_devi import COL_MAX_F, iter_model_devi
    kept, n_kept, stride, seen, n_nan = [], 0, 1, 0, 0
    for path in paths:
        if not path.is_file():
            continue
        try:
            for block in iter_model_devi(path):
                col = block[:, COL_MAX_F]
                n_nan += int(np.isnan(col).sum())
                part = col[(-seen) % stride::stride]
                seen += len(col)
                kept.append(part)
                n_kept += len(part)
                while n_kept > cap:  # keep every other one: frames 0, 2*stride, 4*stride, ...
                    merged = np.concatenate(kept)[::2]
                    kept, n_kept, stride = [merged], len(merged), stride * 2
        except (OSError, ValueError):
            continue
    values = np.concatenate(kept) if kept else np.empty(0)
    return values[np.isfinite(values)], seen, n_nan


def _model_test(path: Path, i: int, arrays: dict) -> dict | None:
    """The summary of ``00.train/model_test.json``: ``n_frames``, the mean over the models of
    ``force_rmse_meV_per_A``, ``energy_rmse_meV_per_atom``, ``virial_rmse_meV_per_atom`` (None
    when no model has it), ``force_rmse_range`` ``[min, max]`` (meV/Å), ``models`` (the
    per-model values), ``pearson``/``spearman`` of max_devi_f against max_error_f."""
    data = read_json(path) if path.is_file() else None
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        return None
    models = {name: {k: v for k, v in m.items() if k != "file"} for name, m in data["models"].items()
              if isinstance(m, dict)}
    out = {"n_frames": data.get("n_frames"), "models": models}
    for key in ("force_rmse_meV_per_A", "energy_rmse_meV_per_atom", "virial_rmse_meV_per_atom"):
        vals = [m[key] for m in models.values() if isinstance(m.get(key), (int, float))]
        out[key] = float(np.mean(vals)) if vals else None
        if key == "force_rmse_meV_per_A":
            out["force_rmse_range"] = [min(vals), max(vals)] if vals else None
    dev = data.get("deviation") or {}
    out["pearson"], out["spearman"] = dev.get("pearson"), dev.get("spearman")
    d, e = dev.get("max_devi_f"), dev.get("max_error_f")
    if isinstance(d, list) and isinstance(e, list) and d and len(d) == len(e):
        arrays["devi_vs_error"][i] = (np.asarray(d, dtype=float), np.asarray(e, dtype=float))
    return out


def _count_lines(path: Path) -> int | None:
    """Lines of a text file (None when missing), read in 1 MiB blocks."""
    if not path.is_file():
        return None
    n, last = 0, b"\n"
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")


def _param_trust(param: dict | None, i: int) -> dict | None:
    """DP-GEN's trust levels of iteration ``i`` from ``param.json`` (the job's own, else the
    global ones); None unless both force levels are single numbers."""
    if param is None:
        return None
    jobs = param.get("model_devi_jobs") or []
    job = jobs[i] if isinstance(jobs, list) and i < len(jobs) and isinstance(jobs[i], dict) else {}
    levels = {}
    for short, key in (("f_lo", "model_devi_f_trust_lo"), ("f_hi", "model_devi_f_trust_hi"),
                       ("v_lo", "model_devi_v_trust_lo"), ("v_hi", "model_devi_v_trust_hi")):
        v = job.get(key, param.get(key))
        levels[short] = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    return levels if levels["f_lo"] is not None and levels["f_hi"] is not None else None


def _group_time(durations: dict, i: int | None, steps: range) -> float | None:
    """Summed wall time (s) of ``steps`` of iteration ``i`` (any iteration when None)."""
    vals = [t for (j, s), t in durations.items() if s in steps and (i is None or j == i)]
    return round(sum(vals), 3) if vals else None


def step_name(step: int) -> str:
    """Name of a step: 0-8 of the loop, 9-16 of the final stage."""
    if step < len(STEP_NAMES):
        return STEP_NAMES[step]
    try:
        from .scheduler import ALL_STEP_NAMES
    except ImportError:  # pragma: no cover - a broken install
        return f"final step {step}"
    return ALL_STEP_NAMES[step] if step < len(ALL_STEP_NAMES) else "publish"


def _stop(record: list, log: dict, manifest) -> dict:
    """``status``, ``stop_reason`` and ``next_step`` of the run."""
    last = record[-1] if record else None
    nxt = (0, 0) if last is None else (last[0] + 1, 0) if last[1] == 8 else (last[0], last[1] + 1)
    if isinstance(manifest, dict) and isinstance(manifest.get("loop"), dict) \
            and (manifest.get("record") is None or list(manifest["record"]) == list(last or [])):
        return {"status": "finished", "stop_reason": manifest["loop"].get("stop_reason"), "next_step": None}
    if log["finished"] and log["running"] is None and log["format"] == "dpgen":
        it = max((i for i, s in log["steps"] if s == 3), default=nxt[0])
        return {"status": "finished", "next_step": None,
                "stop_reason": f"model_devi_jobs exhausted at iteration {it} (DP-GEN: finished)"}
    if log["finished"] and log["running"] is None:
        reason = log["loop_ended"] or log["finished"].removeprefix("finished: ").split("; models in")[0]
        return {"status": "finished", "next_step": None, "stop_reason": reason}
    nxt_named = [nxt[0], nxt[1], step_name(nxt[1])]
    where = f"next step iter {nxt[0]} step {nxt[1]} ({nxt_named[2]})"
    if log["last_level"] in ("ERROR", "CRITICAL"):
        return {"status": "stopped", "next_step": nxt_named,
                "stop_reason": f"stopped on an error: {log['last_message']}; {where}"}
    if log["loop_ended"]:
        return {"status": "loop ended", "next_step": nxt_named,
                "stop_reason": f"loop ended: {log['loop_ended']}; final stage running: {where}"}
    return {"status": "running", "next_step": nxt_named, "stop_reason": f"running: {where}"}


# ---------------------------------------------------------------- output

def missing_figures(report: dict) -> dict[str, str]:
    """The figures of :data:`FIGURES` that have no data in ``report``, with the reason."""
    its = report["iterations"]
    out = {}
    if not any(it["accurate_ratio"] is not None for it in its):
        out["ratios.png"] = "no selection (selection.json or *.shuffled.*.out)"
    if not any(it["labels_added"] for it in its):
        out["labels.png"] = "no labels (iter.*/02.fp/data.*)"
    if not any(v is not None for it in its for v in it["walltime_s"].values()):
        out["walltime.png"] = "no step times (dpgen.log)"
    if not report["arrays"]["max_devi_f"]:
        out["model_devi.png"] = "no model deviation (iter.*/01.model_devi/task.*/model_devi.out)"
    if not any(it["model_test"] and it["model_test"]["force_rmse_meV_per_A"] is not None for it in its):
        out["test_rmse.png"] = "no model test (iter.*/00.train/model_test.json)"
    if not report["arrays"]["devi_vs_error"]:
        out["devi_vs_error.png"] = "no deviation/error pairs (model_test.json 'deviation')"
    return out


def to_json(report: dict, figures_written: list[Path] = ()) -> str:
    """The report as one JSON document: every key of :func:`collect` but ``arrays``, plus
    ``figures`` (paths written) and ``skipped_figures`` ({name: reason})."""
    doc = {k: v for k, v in report.items() if k != "arrays"}
    doc["figures"] = [str(p) for p in figures_written]
    doc["skipped_figures"] = missing_figures(report)
    return json.dumps(doc, indent=1, default=_jsonable)


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"{type(x).__name__} is not JSON serializable")


def _time(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def _num(x, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def table(report: dict, figures_written: list[Path] = ()) -> str:
    """The report as text: one row per (iteration, system) (an ``all`` row when an iteration
    has several systems) with the selection counts and ratios (%), labels added and in total,
    the iteration's train / MD / fp wall times and mean test RMSE; then the final stage,
    the figures and why the run ended (or which step is next)."""
    head = (f"{'iter':>4} {'system':>6} {'cand':>7} {'acc':>7} {'fail':>7} {'cand%':>6} {'acc%':>6} {'fail%':>6} "
            f"{'labels':>7} {'total':>7} {'train':>9} {'MD':>9} {'fp':>9} {'F-RMSE':>7} {'E-RMSE':>7}")
    units = f"{'frames':>64} {'frames':>7}{'meV/Å':>38} {'meV/at':>7}"
    lines = [f"run: {report['folder']} ({report['kind']})", head, units, "-" * len(head)]

    def row(it, s, first):
        pct = [_num(None if s[f'{k}_ratio'] is None else 100 * s[f'{k}_ratio'], ".1f") for k in KINDS]
        cols = [f"{it['iteration'] if first else '':>4}", f"{s['system']:>6}",
                *(f"{_num(s[k], 'd'):>7}" for k in KINDS), *(f"{p:>6}" for p in pct),
                f"{'+' + str(s['labels']):>7}"]
        if first:
            mt = it["model_test"] or {}
            cols += [f"{it['labels_total']:>7}", *(f"{_time(it['walltime_s'][g]):>9}" for g in ("train", "md", "fp")),
                     f"{_num(mt.get('force_rmse_meV_per_A'), '.1f'):>7}",
                     f"{_num(mt.get('energy_rmse_meV_per_atom'), '.2f'):>7}"]
        return " ".join(cols).rstrip()

    for it in report["iterations"]:
        systems = list(it["systems"])
        if len(systems) > 1:
            tot = {k: sum(s[k] or 0 for s in systems) for k in KINDS}
            systems.append({"system": "all", **tot, **{f"{k}_ratio": it[f"{k}_ratio"] for k in KINDS},
                            "labels": it["labels_added"]})
        if not systems:
            systems = [{"system": "-", **{k: None for k in KINDS}, **{f"{k}_ratio": None for k in KINDS},
                        "labels": 0}]
        for k, s in enumerate(systems):
            lines.append(row(it, s, k == 0))
    held = sum(s["held_out"] for it in report["iterations"] for s in it["systems"])
    if held:
        lines.append(f"held out for validation (valid.*): {held} labelled frames")
    final = report["final"]
    if final["walltime_s"] is not None:
        lines.append(f"final stage: wall time {_time(final['walltime_s'])}")
    if final["model_test"]:
        mt = final["model_test"]
        lines.append(f"final model test on {mt.get('n_frames', '?')} validation frames:")
        for name, m in (mt.get("models") or {}).items():
            lines.append(f"  {name:<24} energy {_num(m.get('energy_rmse_meV_per_atom'), '.2f')} meV/atom  "
                         f"force {_num(m.get('force_rmse_meV_per_A'), '.1f')} meV/Å")
    for p in figures_written:
        lines.append(f"figure: {p}")
    for name, why in missing_figures(report).items():
        lines.append(f"no {name}: {why}")
    status = report["status"]
    lines.append(f"run ended: {report['stop_reason']}" if status == "finished" else report["stop_reason"])
    return "\n".join(lines)


def figures(report: dict, out: Path) -> list[Path]:
    """Draw the figures of :data:`FIGURES` that have data (see :func:`missing_figures`) as PNG
    files in ``out`` (created), with matplotlib's Agg canvas (no display, no pyplot state).

    ``ratios.png``: accurate/candidate/failed ratio by iteration; ``labels.png``: labels in
    total and added; ``walltime.png``: train/MD/fp wall time (s or min), stacked bars;
    ``model_devi.png``: box plots of max_devi_f (eV/Å) per iteration, whiskers at the 1st/99th
    percentiles, trust levels f_lo/f_hi drawn; ``test_rmse.png``: test force (meV/Å) and
    energy (meV/atom) RMSE by iteration; ``devi_vs_error.png``: max_devi_f against the max
    force error (eV/Å) of the last tested iteration, trust levels and correlation shown.

    Returns
    -------
    list[Path]
        the files written.

    Raises
    ------
    OSError
        if ``out`` cannot be created or written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(out)
    skip = missing_figures(report)
    todo = [name for name in FIGURES if name not in skip]
    if not todo:
        return []
    out.mkdir(parents=True, exist_ok=True)
    its = report["iterations"]
    written = []
    for name in todo:
        fig = Figure(figsize=(7, 4.5) if name != "test_rmse.png" else (7, 6), layout="constrained")
        FigureCanvasAgg(fig)
        {"ratios.png": _fig_ratios, "labels.png": _fig_labels, "walltime.png": _fig_walltime,
         "model_devi.png": _fig_model_devi, "test_rmse.png": _fig_test_rmse,
         "devi_vs_error.png": _fig_devi_vs_error}[name](fig, its, report)
        fig.savefig(out / name, dpi=110)
        written.append(out / name)
    return written


def _int_ticks(ax) -> None:
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _by_iteration(ax, grid_axis: str = "both", **labels) -> None:
    """Axis labels and title (``labels``), integer iterations on x, legend, grid."""
    ax.set(xlabel="iteration", **labels)
    _int_ticks(ax)
    ax.legend()
    ax.grid(alpha=0.3, axis=grid_axis)


def _fig_ratios(fig, its, report) -> None:
    ax = fig.add_subplot()
    its = [it for it in its if it["accurate_ratio"] is not None]
    x = [it["iteration"] for it in its]
    for k, color in zip(("accurate", "candidate", "failed"), ("tab:green", "tab:orange", "tab:red")):
        ax.plot(x, [it[f"{k}_ratio"] for it in its], "o-", color=color, label=k)
    _by_iteration(ax, ylabel="ratio of explored frames", ylim=(-0.03, 1.03), title="Selection")


def _fig_labels(fig, its, report) -> None:
    ax = fig.add_subplot()
    x = [it["iteration"] for it in its]
    ax.bar(x, [it["labels_added"] for it in its], color="tab:blue", alpha=0.4, label="added")
    ax.plot(x, [it["labels_total"] for it in its], "o-", color="tab:blue", label="in total")
    _by_iteration(ax, ylabel="labelled frames", title="Labels")


def _fig_walltime(fig, its, report) -> None:
    ax = fig.add_subplot()
    x = [it["iteration"] for it in its]
    times = {g: np.array([it["walltime_s"][g] or 0.0 for it in its]) for g in ("train", "md", "fp")}
    scale, unit = (60.0, "min") if max(sum(times.values())) >= 120 else (1.0, "s")
    bottom = np.zeros(len(x))
    for g, label in (("train", "train"), ("md", "MD"), ("fp", "fp")):
        ax.bar(x, times[g] / scale, bottom=bottom, label=label)
        bottom += times[g] / scale
    _by_iteration(ax, "y", ylabel=f"wall time ({unit})", title="Wall time per iteration")


def _fig_model_devi(fig, its, report) -> None:
    ax = fig.add_subplot()
    devi = report["arrays"]["max_devi_f"]
    x = sorted(i for i in devi if devi[i].size)
    if not x:
        return
    ax.boxplot([devi[i] for i in x], positions=x, widths=0.6, whis=(1, 99), showfliers=False, manage_ticks=False)
    p1, p50, p99 = (np.array([np.percentile(devi[i], q) for i in x]) for q in (1, 50, 99))
    log = p50.min() > 0 and p50.max() / p50.min() > 30
    top = float(p99.max())
    drawn = set()
    for it in its:
        levels = it.get("trust_levels") or {}
        if it["iteration"] not in x:
            continue
        for key, color in (("f_lo", "tab:green"), ("f_hi", "tab:red")):
            v = levels.get(key)
            if not isinstance(v, (int, float)):
                continue
            if (v > 0 or not log) and v <= 5 * max(top, 1e-12):
                ax.hlines(v, it["iteration"] - 0.45, it["iteration"] + 0.45, colors=color, linestyles="--",
                          label=key if key not in drawn else None)
                top = max(top, v)
            elif key not in drawn:
                ax.plot([], [], color=color, linestyle="--", label=f"{key} = {v:g} (off scale)")
            drawn.add(key)
    if log:
        ax.set_yscale("log")
        ax.set_ylim(max(float(p1.min()), 1e-3 * top) / 1.5, top * 1.5)
    else:
        ax.set_ylim(0, top * 1.1)
    ax.set_xlim(min(x) - 0.7, max(x) + 0.7)
    ax.set(xlabel="iteration", ylabel="max force deviation (eV/Å)",
           title="Max force deviation of the explored frames\n(box: quartiles, whiskers: 1st-99th percentile)")
    _int_ticks(ax)
    if drawn:
        ax.legend()
    ax.grid(alpha=0.3, axis="y")


def _fig_test_rmse(fig, its, report) -> None:
    ax_f, ax_e = fig.subplots(2, 1, sharex=True)
    tested = [it for it in its if it["model_test"] and it["model_test"]["force_rmse_meV_per_A"] is not None]
    x = [it["iteration"] for it in tested]
    f = np.array([it["model_test"]["force_rmse_meV_per_A"] for it in tested])
    lo = f - np.array([it["model_test"]["force_rmse_range"][0] for it in tested])
    hi = np.array([it["model_test"]["force_rmse_range"][1] for it in tested]) - f
    ax_f.errorbar(x, f, yerr=[lo, hi], fmt="o-", capsize=3, label="mean of the models (bars: min-max)")
    e = [(it["iteration"], it["model_test"]["energy_rmse_meV_per_atom"]) for it in tested
         if it["model_test"]["energy_rmse_meV_per_atom"] is not None]
    if e:
        ax_e.plot(*zip(*e), "o-", color="tab:purple", label="mean of the models")
    final = (report["final"]["model_test"] or {}).get("models") or {}
    for k, (name, m) in enumerate(final.items()):
        style = dict(color=f"C{k + 2}", linestyle=":", label=f"final: {name}")
        if isinstance(m.get("force_rmse_meV_per_A"), (int, float)):
            ax_f.axhline(m["force_rmse_meV_per_A"], **style)
        if isinstance(m.get("energy_rmse_meV_per_atom"), (int, float)):
            ax_e.axhline(m["energy_rmse_meV_per_atom"], **style)
    ax_f.set(ylabel="force RMSE (meV/Å)", title="Test error of the trained models")
    ax_e.set(xlabel="iteration", ylabel="energy RMSE (meV/atom)")
    for ax in (ax_f, ax_e):
        _int_ticks(ax)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")


def _fig_devi_vs_error(fig, its, report) -> None:
    ax = fig.add_subplot()
    pairs = report["arrays"]["devi_vs_error"]
    i = max(pairs)
    devi, err = pairs[i]
    ax.scatter(devi, err, s=8, alpha=0.6)
    finite = np.isfinite(devi) & np.isfinite(err)
    top = float(max(devi[finite].max(), err[finite].max())) if finite.any() else 1.0
    ax.plot([0, top], [0, top], color="gray", lw=0.8, label="error = deviation")
    it = next((it for it in its if it["iteration"] == i), {})
    levels = it.get("trust_levels") or {}
    for key, color in (("f_lo", "tab:green"), ("f_hi", "tab:red")):
        if isinstance(levels.get(key), (int, float)):
            ax.axvline(levels[key], color=color, linestyle="--", label=key)
    mt = it.get("model_test") or {}
    corr = ", ".join(f"{k} {mt[k]:.2f}" for k in ("pearson", "spearman") if isinstance(mt.get(k), (int, float)))
    ax.set(xlabel="max force deviation (eV/Å)", ylabel="max force error (eV/Å)",
           title=f"Iteration {i}: deviation vs error on {len(devi)} test frames" + (f" ({corr})" if corr else ""))
    ax.legend()
    ax.grid(alpha=0.3)
