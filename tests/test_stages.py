"""Exploration stages: a job repeated until its convergence rule holds, or max_numb_iter."""

import json
import subprocess
import sys

import pytest

from dpgen_lite.params import ParamError
from dpgen_lite.record import read_record
from dpgen_lite.schema import validate_run
from dpgen_lite.stages import converged, position

from .conftest import write_param
from .test_loop import tiny

DPGEN = [sys.executable, "-m", "dpgen_lite.cli"]


def selection(ratio: float, f_lo: dict | None = None) -> dict:
    """A selection.json with an accurate ratio and per-system adapted force levels (eV/Å)."""
    return {"accurate_ratio": ratio,
            "systems": {k: {"trust_levels": {"f_lo": v, "v_lo": None}} for k, v in (f_lo or {"000": 0.1}).items()}}


def jobs(*max_iters, conv=None):
    return {"convergence_accurate_ratio": None,
            "model_devi_jobs": [{"max_numb_iter": m, "convergence": conv} for m in max_iters]}


def test_position_follows_convergence_and_max_numb_iter():
    """Job 0 (3 iterations at most) converges at its 2nd iteration: job 1 starts at iteration 2
    and, never converging, takes its 2 iterations; then the jobs are exhausted."""
    param = jobs(3, 2, conv={"type": "fixed-levels", "conv_accuracy": 0.9})
    sels = [selection(0.5), selection(0.95), selection(0.2), selection(0.3)]
    got = [position(param, it, lambda i: sels[i]) for it in range(5)]
    assert got == [(0, 0), (0, 1), (1, 0), (1, 1), None]


def test_dpgen_jobs_take_one_iteration_each_without_reading_selections():
    param = jobs(1, 1, 1)

    def no_file(it):
        raise FileNotFoundError(it)
    assert [position(param, it, no_file) for it in range(4)] == [(0, 0), (1, 0), (2, 0), None]


def test_adaptive_lower_converges_when_levels_settle():
    """DP-GEN2's rule: consecutive adapted lower levels of the last n_checked_steps iterations
    differ by less than conv_tolerance, for every system."""
    conv = {"type": "adaptive-lower", "conv_tolerance": 0.05, "n_checked_steps": 3}
    hist = [selection(0, {"000": 0.30, "001": 0.2}), selection(0, {"000": 0.20, "001": 0.21}),
            selection(0, {"000": 0.17, "001": 0.22})]
    assert not converged(conv, hist[:2])  # fewer than n_checked_steps iterations
    assert not converged(conv, hist)  # 0.30 -> 0.20 moved by 0.10
    hist.append(selection(0, {"000": 0.16, "001": 0.24}))
    assert converged(conv, hist)
    hist.append(selection(0, {"000": 0.16, "001": 0.35}))
    assert not converged(conv, hist)  # one system moved


@pytest.mark.parametrize("change, message", [
    ({"max_numb_iter": 0}, r"max_numb_iter = 0: must be >= 1"),
    ({"max_numb_iter": 3}, r"max_numb_iter = 3 without a convergence rule"),
    ({"max_numb_iter": 3, "convergence": {"type": "adaptive-lower"}}, r"needs model_devi_adapt_trust_lo"),
    ({"convergence": {"type": "fixed-levels", "conv_accuracy": 1.5}}, r"conv_accuracy = 1.5: must lie in"),
    ({"convergence": {"type": "sometimes"}}, r"sometimes"),
])
def test_bad_stage_keys_are_refused(cu_run, change, message):
    folder, param = cu_run
    p = tiny(param, n_jobs=1)
    p["model_devi_jobs"][0].update(change)
    with pytest.raises(ParamError, match=message):
        validate_run(p, folder)


def test_stages_converge_early_or_stop_at_max(cu_run):
    """Job 0 (every frame accurate: per-job trust levels 50/100 eV/Å) converges at once and skips
    its other 2 iterations; job 1 (every frame a candidate) does not converge in 2 iterations and,
    with fatal_at_max, stops the run with exit 1 and a message naming the job; with fatal_at_max
    false the run goes on past it and ends when the jobs are exhausted."""
    folder, param = cu_run
    p = tiny(param, n_jobs=2)
    conv = {"type": "fixed-levels", "conv_accuracy": 0.9}
    p["model_devi_jobs"][0].update(max_numb_iter=3, convergence=conv, model_devi_f_trust_lo=50.0,
                                   model_devi_f_trust_hi=100.0)
    p["model_devi_jobs"][1].update(max_numb_iter=2, convergence=conv, fatal_at_max=True)
    write_param(folder, p)
    out = subprocess.run([*DPGEN, "run", "param.json"], cwd=folder, capture_output=True, text=True, timeout=900)
    assert out.returncode == 1, out.stderr
    assert "model_devi_jobs[1] has not converged in max_numb_iter = 2 iterations" in out.stderr
    assert read_record(folder)[-1] == (2, 5)  # stopped before labelling the last iteration of job 1
    sels = [json.loads((folder / f"iter.{it:06d}/02.fp/selection.json").read_text()) for it in range(3)]
    assert [(s["job"], s["repeat"], s["converged"]) for s in sels] == [(0, 0, True), (1, 0, False), (1, 1, False)]
    log = (folder / "dpgen.log").read_text()
    assert "model_devi_jobs[0] converged (fixed-levels, iteration 1 of at most 3)" in log
    assert "2 MD tasks (model_devi_jobs[1]" in log
    # the user lets it go on: the stage ends unconverged, nothing is left, the last models are trained
    p["model_devi_jobs"][1]["fatal_at_max"] = False
    write_param(folder, p)
    out = subprocess.run([*DPGEN, "run", "param.json"], cwd=folder, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    log = (folder / "dpgen.log").read_text()
    assert "model_devi_jobs[1] has not converged in max_numb_iter = 2 iterations: going on to the next job" in log
    assert read_record(folder)[-1] == (3, 2) and "model_devi_jobs exhausted after 3 iteration(s)" in log
