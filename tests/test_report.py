"""``dpgen report`` on small synthetic run folders: a finished dpgen_lite run, a run of DP-GEN
(no selection.json, DP-GEN's log format) and a run still going; numbers checked against the
files, figures written, the run folder left untouched."""

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from dpgen_lite import report as rep
from dpgen_lite.params import ParamError

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 1, 2, 3, 4, 5)
NAMES = ("make_train", "run_train", "post_train", "make_model_devi", "run_model_devi", "post_model_devi",
         "make_fp", "run_fp", "post_fp")
FINAL_NAMES = ("make_long_train", "run_long_train", "make_special_fp", "run_special_fp", "post_special_fp",
               "make_special_train", "run_special_train", "test_models")


# ---------------------------------------------------------------- builders

def npy_system(path: Path, frames_per_set: list[int], n_atoms: int = 4) -> None:
    """A deepmd/npy folder: type.raw and one set.%03d/coord.npy (n_frames, n_atoms*3) per entry."""
    path.mkdir(parents=True)
    (path / "type.raw").write_text("0\n" * n_atoms)
    for k, n in enumerate(frames_per_set):
        (path / f"set.{k:03d}").mkdir()
        np.save(path / f"set.{k:03d}" / "coord.npy", np.zeros((n, 3 * n_atoms)))
        np.save(path / f"set.{k:03d}" / "energy.npy", np.zeros(n))


def model_devi_out(path: Path, max_devi_f, cut_last: bool = False) -> None:
    """deepmd-kit's model_devi.out with the given max force deviations (eV/Å)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["#       step         max_devi_v         min_devi_v         avg_devi_v         max_devi_f"
             "         min_devi_f         avg_devi_f\n"]
    for k, f in enumerate(max_devi_f):
        lines.append(f"{10 * k:12d}" + "".join(f"{v:19.6e}" for v in (0.1, 0.01, 0.05, f, f / 10, f / 2)) + "\n")
    text = "".join(lines)
    path.write_text(text[: -40] if cut_last else text)  # cut: a run killed while writing


def write_lines(path: Path, n: int) -> None:
    path.write_text("".join(f"iter.000000/01.model_devi/task.000.000000 {10 * k}\n" for k in range(n)))


def lite_log(events: list[tuple[float, str]], ms: bool = True) -> str:
    """dpgen_lite's log lines (``ms``: with milliseconds, as written since; without, as older runs wrote)."""
    stamp = (lambda d: d.strftime('%Y-%m-%d %H:%M:%S') + (f".{d.microsecond // 1000:03d}" if ms else ""))
    return "".join(f"{stamp(T0 + timedelta(seconds=t))} {level} {msg}\n"
                   for t, msg, level in ((e[0], e[1], e[2] if len(e) > 2 else "INFO") for e in events))


def dpgen_log(events: list[tuple[float, str]]) -> str:
    out = []
    for t, msg in events:
        stamp = T0 + timedelta(seconds=t)
        out.append(f"{stamp.strftime('%Y-%m-%d %H:%M:%S')},{stamp.microsecond // 1000:03d} - INFO : {msg}\n")
    return "".join(out)


def lite_steps(starts: dict) -> list[tuple[float, str]]:
    """dpgen_lite's step-start lines from ``{(iteration, step): t}``, plus some chatter."""
    events = []
    for (i, s), t in sorted(starts.items(), key=lambda kv: kv[1]):
        name = NAMES[s] if s < 9 else FINAL_NAMES[s - 9]
        events.append((t, f"iter {i:06d} step {s}: {name}"))
        events.append((t, f"iter.{i:06d}/00.train: 2 queued, 0 running, 0 finished, 0 failed"))
    return events


def selection(i: int, systems: dict, f_lo=0.05, f_hi=0.15) -> dict:
    out = {"iteration": i, "trust_levels": {"f_lo": f_lo, "f_hi": f_hi, "v_lo": None, "v_hi": None},
           "systems": {}, "failed_md_tasks": []}
    tot = np.zeros(3)
    for name, (acc, cand, fail) in systems.items():
        n = acc + cand + fail
        out["systems"][name] = {"accurate": acc, "candidate": cand, "failed": fail, "accurate_ratio": acc / n,
                                "candidate_ratio": cand / n, "failed_ratio": fail / n,
                                "trust_levels": out["trust_levels"], "chosen": []}
        tot += (acc, cand, fail)
    out["accurate_ratio"] = tot[0] / tot.sum()
    out["converged"] = False
    return out


def model_test(i: int, force: list[float], energy: list[float], n: int = 20) -> dict:
    rng = np.random.default_rng(i)
    devi = rng.random(n) * 0.3
    return {"iteration": i, "systems": ["init"], "n_frames": n,
            "models": {f"graph.{k:03d}": {"file": f"iter.{i:06d}/00.train/graph.{k:03d}.pb",
                                          "energy_rmse_meV_per_atom": e, "force_rmse_meV_per_A": f,
                                          "virial_rmse_meV_per_atom": None, "n_frames": n}
                       for k, (f, e) in enumerate(zip(force, energy))},
            "deviation": {"max_devi_f": devi.tolist(), "max_error_f": (2 * devi + 0.01).tolist(),
                          "pearson": 0.9, "spearman": 0.8}}


LITE_STARTS = {
    **{(0, s): t for s, t in enumerate((0, 5, 65, 70, 72, 172, 180, 181, 241))},
    **{(1, s): t for s, t in enumerate((250, 251, 390, 400, 401, 690, 700, 701, 750))},
    **{(2, s): t for s, t in enumerate((760, 761, 900))},
}
LITE_WALL = {0: {"train": 70, "md": 110, "fp": 70}, 1: {"train": 150, "md": 300, "fp": 60}, 2: {"train": 145}}


@pytest.fixture
def lite_run(tmp_path):
    """A finished dpgen_lite run: iterations 0 and 1 complete, 2 trained, the final stage done."""
    run = tmp_path / "lite"
    run.mkdir()
    (run / "record.dpgen").write_text("".join(f"{i} {s}\n" for (i, s) in sorted(LITE_STARTS))
                                      + "".join(f"2 {s}\n" for s in range(9, 17)))
    reason = "model_devi_jobs exhausted after 2 iteration(s)"
    final = {(2, 9 + k): 905 + 10 * k for k in range(8)}
    (run / "dpgen.log").write_text(lite_log(
        lite_steps(LITE_STARTS) + [(905, f"loop ended: {reason}")] + lite_steps(final)
        + [(1005, f"finished: {reason}; models in models/ (manifest.json)")]))
    sels = {0: selection(0, {"000": (10, 4, 1), "001": (2, 6, 2)}),
            1: selection(1, {"000": (18, 2, 0), "001": (15, 4, 1)}, f_lo=0.06, f_hi=0.2)}
    data = {0: {"data.000": [[3]], "data.001": [[2], [1]], "valid.000": [[1]]},  # data.001: two compositions
            1: {"data.000": [[2, 2]], "data.001": [[1]]}}
    for i in (0, 1):
        it = run / f"iter.{i:06d}"
        (it / "02.fp").mkdir(parents=True)
        (it / "02.fp" / "selection.json").write_text(json.dumps(sels[i], indent=1))
        for name, sets in data[i].items():
            if len(sets) == 1:
                npy_system(it / "02.fp" / name, sets[0])
            else:
                for k, frames in enumerate(sets):
                    npy_system(it / "02.fp" / name / f"comp{k}", frames)
        for task in range(2):
            model_devi_out(it / "01.model_devi" / f"task.000.{task:06d}" / "model_devi.out",
                           np.linspace(0.01, 0.3 - 0.1 * i, 25))
        (it / "00.train").mkdir()
    (run / "iter.000000/00.train/model_test.json").write_text(json.dumps(model_test(0, [100, 120], [3, 5])))
    (run / "iter.000001/00.train/model_test.json").write_text(json.dumps(model_test(1, [80, 90], [2, 2.5])))
    (run / "iter.000002/00.train").mkdir(parents=True)
    (run / "final").mkdir()
    (run / "final/model_test.json").write_text(json.dumps(
        {"validation_systems": ["iter.000000/02.fp/valid.000"], "n_frames": 1,
         "models": {"loop": {"energy_rmse_meV_per_atom": 2.0, "force_rmse_meV_per_A": 70.0},
                    "long": {"energy_rmse_meV_per_atom": 1.0, "force_rmse_meV_per_A": 50.0}}}))
    (run / "models").mkdir()
    (run / "models/manifest.json").write_text(json.dumps(
        {"record": [2, 16], "loop": {"iteration": 2, "stop_reason": reason, "models": []}, "final": {}}))
    return run


DPGEN_STARTS = {**{(0, s): t for s, t in enumerate((0, 10, 130, 131, 132, 312, 320, 321, 501))},
                **{(1, s): t for s, t in enumerate((510, 511, 700))}}


@pytest.fixture
def dpgen_run(tmp_path):
    """A run of DP-GEN: no selection.json, DP-GEN's log format, ended by model_devi_jobs."""
    run = tmp_path / "dpgen"
    run.mkdir()
    (run / "record.dpgen").write_text("".join(f"{i} {s}\n" for (i, s) in sorted(DPGEN_STARTS)))
    events = [(0, "start running")]
    for (i, s), t in sorted(DPGEN_STARTS.items(), key=lambda kv: kv[1]):
        if s == 0:
            events.append((t, f"iter.{i:06d}".center(70, "=")))
        events.append((t + 0.25, f"iter.{i:06d} task {s:02d}".center(70, "-")))
    events += [(710.5, "iter.000001 task 03".center(70, "-")), (711, "finished")]
    (run / "dpgen.log").write_text(dpgen_log(events))
    (run / "param.json").write_text(json.dumps({"model_devi_f_trust_lo": 0.05, "model_devi_f_trust_hi": 0.15,
                                                "model_devi_jobs": [{"sys_idx": [0]}]}))
    fp = run / "iter.000000" / "02.fp"
    fp.mkdir(parents=True)
    for name, (c, a, f) in {"000": (5, 12, 3), "001": (7, 0, 1)}.items():
        write_lines(fp / f"candidate.shuffled.{name}.out", c)
        write_lines(fp / f"rest_accurate.shuffled.{name}.out", a)
        write_lines(fp / f"rest_failed.shuffled.{name}.out", f)
    npy_system(fp / "data.000", [4])
    npy_system(fp / "data.001", [2, 3])
    for k in range(3):
        (fp / f"task.000.{k:06d}").mkdir()
    model_devi_out(run / "iter.000000/01.model_devi/task.000.000000/model_devi.out", [0.02, 0.1, 0.2, float("nan")])
    (run / "iter.000001" / "00.train").mkdir(parents=True)
    return run


@pytest.fixture
def running_run(tmp_path):
    """dpgen_lite killed / still running in iteration 1's MD (step 4): partial files."""
    run = tmp_path / "running"
    run.mkdir()
    starts = {**{(0, s): t for s, t in enumerate((0, 5, 65, 70, 72, 172, 180, 181, 241))},
              **{(1, s): t for s, t in enumerate((250, 251, 390, 400, 401))}}
    done = [k for k in sorted(starts) if k != (1, 4)]
    (run / "record.dpgen").write_text("".join(f"{i} {s}\n" for i, s in done) + "1 ")  # torn last line
    (run / "dpgen.log").write_text(lite_log(lite_steps(starts) + [(461, "iter.000001/01.model_devi: 0 queued")]))
    fp = run / "iter.000000" / "02.fp"
    fp.mkdir(parents=True)
    (fp / "selection.json").write_text(json.dumps(selection(0, {"000": (1, 3, 0)})))
    npy_system(fp / "data.000", [3])
    model_devi_out(run / "iter.000000/01.model_devi/task.000.000000/model_devi.out", [0.1] * 4)
    model_devi_out(run / "iter.000001/01.model_devi/task.000.000000/model_devi.out", [0.05, 0.07, 0.09],
                   cut_last=True)
    (run / "iter.000001/01.model_devi/task.000.000001").mkdir()  # not started: no model_devi.out yet
    (run / "iter.000001/00.train").mkdir()
    (run / "iter.000001/00.train/model_test.json").write_text('{"iteration": 1, "mod')  # half-written
    return run


def snapshot(folder: Path, skip: str | None = None) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else None
            for p in folder.rglob("*") if skip is None or p.relative_to(folder).parts[0] != skip}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dpgen_lite.cli", "report", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def assert_pngs(paths, names):
    assert sorted(Path(p).name for p in paths) == sorted(names)
    for p in paths:
        data = Path(p).read_bytes()
        assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- tests

def test_lite_run_numbers(lite_run, tmp_path):
    before = snapshot(lite_run)
    r = rep.collect(lite_run)
    assert r["kind"] == "dpgen_lite" and r["status"] == "finished"
    assert r["stop_reason"] == "model_devi_jobs exhausted after 2 iteration(s)"
    assert [it["iteration"] for it in r["iterations"]] == [0, 1, 2]
    it0, it1, it2 = r["iterations"]
    s0 = {s["system"]: s for s in it0["systems"]}
    assert (s0["000"]["accurate"], s0["000"]["candidate"], s0["000"]["failed"]) == (10, 4, 1)
    assert s0["001"]["candidate_ratio"] == pytest.approx(0.6)
    assert it0["accurate_ratio"] == pytest.approx(12 / 25) and it0["failed_ratio"] == pytest.approx(3 / 25)
    assert (s0["000"]["labels"], s0["001"]["labels"], s0["000"]["held_out"]) == (3, 3, 1)
    assert [it["labels_added"] for it in r["iterations"]] == [6, 5, 0]
    assert [it["labels_total"] for it in r["iterations"]] == [6, 11, 11]
    for it in r["iterations"]:
        for g, t in LITE_WALL[it["iteration"]].items():
            assert it["walltime_s"][g] == pytest.approx(t)
    assert it2["walltime_s"]["md"] is None
    assert r["final"]["walltime_s"] == pytest.approx(100)
    assert it0["model_test"]["force_rmse_meV_per_A"] == pytest.approx(110)
    assert it0["model_test"]["energy_rmse_meV_per_atom"] == pytest.approx(4)
    assert it1["model_test"]["force_rmse_meV_per_A"] == pytest.approx(85)
    assert it1["trust_levels"]["f_hi"] == 0.2
    assert it0["model_devi"]["n_frames"] == 50 and it0["md_tasks"] == 2
    assert r["final"]["model_test"]["models"]["long"]["force_rmse_meV_per_A"] == 50.0

    text = rep.table(r)
    assert "run ended: model_devi_jobs exhausted after 2 iteration(s)" in text
    row = next(line.split() for line in text.splitlines() if line.split()[:2] == ["0", "000"])
    assert row[2:9] == ["4", "10", "1", "26.7", "66.7", "6.7", "+3"]
    assert row[9:] == ["6", "70", "s", "110", "s", "70", "s", "110.0", "4.00"]
    row = next(line.split() for line in text.splitlines() if line.split()[:2] == ["1", "000"])
    assert row[10:16] == ["2.5", "min", "5.0", "min", "60", "s"]
    assert any(line.split()[:4] == ["all", "10", "12", "3"] for line in text.splitlines())
    assert "long" in text and "50.0 meV/Å" in text

    written = rep.figures(r, tmp_path / "fig")
    assert_pngs(written, rep.FIGURES)
    assert snapshot(lite_run) == before


def test_dpgen_run(dpgen_run, tmp_path):
    before = snapshot(dpgen_run)
    r = rep.collect(dpgen_run)
    assert r["kind"] == "dpgen" and r["status"] == "finished"
    assert "model_devi_jobs exhausted at iteration 1" in r["stop_reason"]
    it0, it1 = r["iterations"]
    assert it0["source"] == "shuffled.out"
    s = {x["system"]: x for x in it0["systems"]}
    assert (s["000"]["candidate"], s["000"]["accurate"], s["000"]["failed"]) == (5, 12, 3)
    assert s["000"]["accurate_ratio"] == pytest.approx(12 / 20)
    assert s["001"]["failed_ratio"] == pytest.approx(1 / 8)
    assert it0["accurate_ratio"] == pytest.approx(12 / 28)
    assert (s["000"]["labels"], s["001"]["labels"], it0["labels_total"]) == (4, 5, 9)
    assert it0["walltime_s"] == pytest.approx({"train": 131, "md": 189, "fp": 190})
    assert it1["walltime_s"]["train"] == pytest.approx(200.25)  # 510.25 -> 710.5 (task 03 start)
    assert it1["walltime_s"]["md"] == pytest.approx(0.5)  # task 03 -> finished
    assert it0["trust_levels"] == {"f_lo": 0.05, "f_hi": 0.15, "v_lo": None, "v_hi": None}
    assert it0["model_devi"]["n_frames"] == 4 and it0["model_devi"]["n_nan"] == 1
    assert it0["fp_tasks"] == 3 and it0["model_test"] is None

    out = tmp_path / "fig"
    proc = cli(dpgen_run, "--json", "--out", out)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["kind"] == "dpgen" and doc["iterations"][0]["labels_total"] == 9
    assert_pngs(doc["figures"], ["ratios.png", "labels.png", "walltime.png", "model_devi.png"])
    assert set(doc["skipped_figures"]) == {"test_rmse.png", "devi_vs_error.png"}
    assert snapshot(dpgen_run) == before


def test_running_run(running_run, tmp_path):
    before = snapshot(running_run)
    r = rep.collect(running_run)
    assert r["status"] == "running" and r["next_step"] == [1, 4, "run_model_devi"]
    assert r["stop_reason"] == "running: next step iter 1 step 4 (run_model_devi)"
    it0, it1 = r["iterations"]
    assert it1["steps_done"] == [0, 1, 2, 3]
    assert it1["walltime_s"] == pytest.approx({"train": 150, "md": 61, "fp": None})  # 400 -> last line 461
    assert it1["source"] is None and it1["accurate_ratio"] is None and it1["systems"] == []
    assert it1["model_devi"]["n_frames"] == 2  # the cut last line dropped
    assert it1["model_test"] is None  # half-written
    assert it1["labels_total"] == 3
    text = rep.table(r)
    assert text.splitlines()[-1] == "running: next step iter 1 step 4 (run_model_devi)"
    assert any(line.split()[:3] == ["1", "-", "-"] for line in text.splitlines())

    proc = cli(running_run, "--json")  # figures in running/report/
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["status"] == "running"
    assert_pngs(doc["figures"], ["ratios.png", "labels.png", "walltime.png", "model_devi.png"])
    assert all(Path(p).parent == running_run / "report" for p in doc["figures"])
    assert snapshot(running_run, skip="report") == before


def test_cli_table_and_errors(lite_run, tmp_path, capsys):
    before = snapshot(lite_run)
    proc = cli(lite_run, "--out", tmp_path / "fig")
    assert proc.returncode == 0, proc.stderr
    assert "run ended: model_devi_jobs exhausted" in proc.stdout
    assert proc.stdout.count("figure: ") == len(rep.FIGURES)
    assert snapshot(lite_run) == before
    from dpgen_lite.cli import main
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(ParamError, match="not a run folder"):
        rep.collect(tmp_path / "empty")


def test_stopped_and_missing_log(running_run):
    log = running_run / "dpgen.log"
    log.write_text(log.read_text() + lite_log([(470, "3 of 4 fp tasks failed", "ERROR")]))
    r = rep.collect(running_run)
    assert r["status"] == "stopped" and "3 of 4 fp tasks failed" in r["stop_reason"]
    log.unlink()
    r = rep.collect(running_run)
    assert r["status"] == "running" and r["iterations"][0]["walltime_s"] == {"train": None, "md": None, "fp": None}
    assert "walltime.png" in rep.missing_figures(r)
    assert "no walltime.png" in rep.table(r)


def test_max_devi_subsampled_evenly(tmp_path):
    values = np.arange(1, 101) / 1000
    model_devi_out(tmp_path / "a" / "model_devi.out", values[:50])
    model_devi_out(tmp_path / "b" / "model_devi.out", values[50:])
    kept, n, n_nan = rep.max_devi_f([tmp_path / "a" / "model_devi.out", tmp_path / "missing",
                                     tmp_path / "b" / "model_devi.out"], cap=10)
    assert (n, n_nan) == (100, 0)
    assert len(kept) <= 10
    np.testing.assert_allclose(kept, values[::16])


def test_end_of_an_earlier_run_is_forgotten(lite_run):
    """A finished run redone from iteration 1 step 3 (``dpgen redo``) and running again."""
    (lite_run / "models/manifest.json").unlink()
    (lite_run / "record.dpgen").write_text("".join(f"{i} {s}\n" for (i, s) in sorted(LITE_STARTS) if (i, s) < (1, 3)))
    log = lite_run / "dpgen.log"
    log.write_text(log.read_text() + lite_log([(2000, "resuming at iteration 1 step 3 (make_model_devi)"),
                                               (2001, "iter 000001 step 3: make_model_devi"), (2031, "chatter")]))
    r = rep.collect(lite_run)
    assert r["status"] == "running" and r["next_step"] == [1, 3, "make_model_devi"]
    assert r["iterations"][1]["walltime_s"]["md"] == pytest.approx(300 + 30)  # both runs of the steps summed
    assert r["final"]["walltime_s"] == pytest.approx(100)



@pytest.mark.parametrize("ms, expected", [(True, [1.5, 0.25]), (False, [1.0, 1.0])])
def test_step_times_to_the_millisecond(tmp_path, ms, expected):
    """The log's stamps carry milliseconds, so a step's wall time is read to the millisecond; a log of
    an older run (stamps in whole seconds) still reads, to the second."""
    log = tmp_path / "dpgen.log"
    log.write_text(lite_log(lite_steps({(0, 0): 0.25, (0, 1): 1.75, (0, 2): 2.0}), ms=ms))
    durations = rep.parse_log(log)["durations"]
    assert [durations[(0, 0)], durations[(0, 1)]] == pytest.approx(expected)
