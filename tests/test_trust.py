"""Trust levels as DP-GEN has them: per system and per job, relative to the mean force, adaptive
lower levels, virial precedence; the streaming reader; bad input refused at start.

Each selection rule is run on hand-built ``model_devi.out`` files where the right pick is known
and differs from what the global rule would pick.  The DP-GEN references below restate, frame by
frame, DP-GEN's ``_select_by_model_devi_standard`` and ``_select_by_model_devi_adaptive_trust_low``
(dpgen/generator/run.py) on whole files read by ``np.loadtxt``, DP-GEN's reader.
"""

import json

import numpy as np
import pytest

import dpgen_lite.select.model_devi as model_devi
from dpgen_lite.context import Context
from dpgen_lite.explore.lammps import LammpsEngine
from dpgen_lite.params import ParamError
from dpgen_lite.schema import validate_run
from dpgen_lite.select.model_devi import (ACCURATE, CANDIDATE, FAILED, Adaptive, TrustLevels, classify,
                                          dump_rms_force, iter_model_devi, read_model_devi)
from dpgen_lite.select.stage import classify_tasks, select

HEADER = ("#       step         max_devi_v         min_devi_v         avg_devi_v         max_devi_f"
          "         min_devi_f         avg_devi_f")


def write_devi(path, devi_f, devi_v=None, steps=None):
    """deepmd-kit's model_devi.out with the given max force (and virial) deviations."""
    devi_f = np.asarray(devi_f, dtype=float)
    devi_v = np.zeros_like(devi_f) if devi_v is None else np.asarray(devi_v, dtype=float)
    steps = np.arange(len(devi_f)) * 10 if steps is None else np.asarray(steps)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [f"{s:12d} {v:18.6e} {v / 2:18.6e} {v / 3:18.6e} {f:18.6e} {f / 2:18.6e} {f / 3:18.6e}"
            for s, v, f in zip(steps, devi_v, devi_f)]
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    return path


def write_dump(path, forces):
    """A LAMMPS dump (id type x y z fx fy fz) of ``forces``: (n_frames, n_atoms, 3), eV/Å."""
    out = []
    for k, frame in enumerate(forces):
        out += ["ITEM: TIMESTEP", str(10 * k), "ITEM: NUMBER OF ATOMS", str(len(frame)),
                "ITEM: BOX BOUNDS pp pp pp", "0 10", "0 10", "0 10", "ITEM: ATOMS id type x y z fx fy fz"]
        out += [f"{i + 1} 1 {i}.0 0.0 0.0 {fx} {fy} {fz}" for i, (fx, fy, fz) in enumerate(frame)]
    path.write_text("\n".join(out) + "\n")


def dpgen_standard(tasks, f_lo, f_hi, v_lo=1e10, v_hi=1e10, skip=0):
    """DP-GEN's ``_select_by_model_devi_standard`` (no clusters), frame by frame."""
    accurate, candidate, failed = [], [], []
    for name, path in tasks:
        conf = np.loadtxt(path, ndmin=2)
        for ii in range(conf.shape[0]):
            if conf[ii][0] < skip:
                continue
            cc = int(conf[ii][0])
            if v_lo <= conf[ii][1] < v_hi or f_lo <= conf[ii][4] < f_hi:
                candidate.append((name, cc))
            elif conf[ii][1] >= v_hi or conf[ii][4] >= f_hi:
                failed.append((name, cc))
            elif conf[ii][1] < v_lo and conf[ii][4] < f_lo:
                accurate.append((name, cc))
            else:
                raise RuntimeError("should not happen")
    return accurate, candidate, failed


def dpgen_adaptive(tasks, f_hi, numb_f, perc_f, v_hi, numb_v, perc_v, skip=0):
    """DP-GEN's ``_select_by_model_devi_adaptive_trust_low``, as written there."""
    accur, candi, failed, coll_v, coll_f = set(), set(), [], [], []
    for name, path in tasks:
        md = np.loadtxt(path, ndmin=2)
        for ii in range(md.shape[0]):
            if md[ii][0] < skip:
                continue
            cc = int(md[ii][0])
            if md[ii][4] > f_hi or md[ii][1] > v_hi:
                failed.append((name, cc))
            else:
                coll_v.append([md[ii][1], name, cc])
                coll_f.append([md[ii][4], name, cc])
                accur.add((name, cc))
    coll_v.sort()
    coll_f.sort()
    numb_v = min(max(numb_v, int(perc_v * 0.01 * len(coll_v))), len(coll_v))
    numb_f = min(max(numb_f, int(perc_f * 0.01 * len(coll_f))), len(coll_f))
    v_lo = v_hi if numb_v == 0 else coll_v[-numb_v][0]
    f_lo = f_hi if numb_f == 0 else coll_f[-numb_f][0]
    for ii in range(len(coll_v) - numb_v, len(coll_v)):
        candi.add(tuple(coll_v[ii][1:]))
    for ii in range(len(coll_f) - numb_f, len(coll_f)):
        candi.add(tuple(coll_f[ii][1:]))
    return accur - candi, candi, failed, f_lo, v_lo


class Collect:
    """A sink keeping the accurate and failed frames as (task, step)."""

    def __init__(self, names):
        self.names, self.frames = names, {ACCURATE: [], FAILED: []}

    def __call__(self, kind, task, step):
        self.frames[kind] += [(self.names[t], s) for t, s in zip(task.tolist(), step.tolist())]


def run_classify(tmp_path, task_dirs, trust, skip=0, **kw):
    names = [str(t.relative_to(tmp_path)) for t in task_dirs]
    sink = Collect(names)
    frames = classify_tasks(LammpsEngine({}), task_dirs, tmp_path, trust, skip, sink=sink, **kw)
    cands = [(names[t], s) for t, s, _ in frames.candidates.tolist()]
    return frames, sink.frames[ACCURATE], cands, sink.frames[FAILED]


# --- virial precedence -------------------------------------------------------------------------

def test_candidate_window_wins_over_failed_as_in_dpgen():
    trust = TrustLevels(0.05, 0.15, 0.01, 0.05)
    devi_f = np.array([0.10, 0.20, 0.01, 0.01, 0.01, 0.20, np.nan, 0.10])
    devi_v = np.array([0.10, 0.02, 0.10, 0.001, 0.02, 0.10, 0.02, np.nan])
    # f candidate + v failed -> candidate; f failed + v candidate -> candidate (DP-GEN checks the
    # candidate windows first); f accurate + v failed -> failed; NaN -> failed
    assert classify(devi_f, devi_v, trust).tolist() == [CANDIDATE, CANDIDATE, FAILED, ACCURATE, CANDIDATE,
                                                        FAILED, FAILED, FAILED]


def test_classify_matches_dpgen_standard_on_random_frames(tmp_path):
    rng = np.random.default_rng(7)
    tasks = []
    for k in range(3):
        path = write_devi(tmp_path / f"task.000.{k:06d}" / "model_devi.out",
                          np.round(rng.uniform(0, 0.3, 400), 3), np.round(rng.uniform(0, 0.08, 400), 3))
        tasks.append(path.parent)
    for trust, skip in ((TrustLevels(0.05, 0.15, 0.01, 0.05), 0), (TrustLevels(0.1, 0.2), 500)):
        _, acc, cand, fail = run_classify(tmp_path, tasks, trust, skip=skip)
        v = {} if trust.v_lo is None else {"v_lo": trust.v_lo, "v_hi": trust.v_hi}
        ref = dpgen_standard([(str(t.relative_to(tmp_path)), t / "model_devi.out") for t in tasks],
                             trust.f_lo, trust.f_hi, skip=skip, **v)
        assert (acc, cand, sorted(fail)) == (ref[0], ref[1], sorted(ref[2]))
        assert cand  # every class occurs
        assert acc and fail


# --- streaming reader --------------------------------------------------------------------------

@pytest.mark.parametrize("reader", ["pandas", "numpy"])
def test_streaming_reader_equals_whole_file_reader(tmp_path, monkeypatch, reader):
    monkeypatch.setattr(model_devi, "READER", reader)
    rng = np.random.default_rng(1)
    path = write_devi(tmp_path / "model_devi.out", rng.uniform(0, 1, 1000), rng.uniform(0, 1, 1000))
    text = path.read_text().splitlines()
    text[500] = "        5000               -nan               -nan               -nan                nan" \
                "                nan                nan"
    path.write_text("\n".join(text) + "\n")
    whole = read_model_devi(path)
    for chunk in (100, 1000, 1 << 22):
        blocks = list(iter_model_devi(path, chunk))
        assert len(blocks) > 1 or chunk == 1 << 22
        assert max(len(b) for b in blocks) <= max(chunk // 100 + 1, 1000)
        np.testing.assert_array_equal(np.concatenate(blocks), whole)


@pytest.mark.parametrize("reader", ["pandas", "numpy"])
def test_streaming_reader_drops_a_cut_last_line(tmp_path, monkeypatch, reader):
    monkeypatch.setattr(model_devi, "READER", reader)
    path = write_devi(tmp_path / "model_devi.out", [0.1, 0.2, 0.3])
    path.write_text(path.read_text() + "          30   1.0e-02")  # killed while writing
    assert np.concatenate(list(iter_model_devi(path))).shape == (3, 7)
    path.write_text(HEADER + "\n0 1 2\n")
    with pytest.raises(ValueError, match="7 columns"):
        list(iter_model_devi(path))


def test_streamed_classification_over_small_chunks_is_identical(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    tasks = [write_devi(tmp_path / f"task.000.{k:06d}" / "model_devi.out", rng.uniform(0, 0.3, 300),
                        rng.uniform(0, 0.1, 300)).parent for k in range(2)]
    trust = TrustLevels(0.05, 0.15, 0.02, 0.06)
    whole = run_classify(tmp_path, tasks, trust, skip=100)
    monkeypatch.setattr(model_devi, "CHUNK_BYTES", 500)  # a few rows per block
    streamed = run_classify(tmp_path, tasks, trust, skip=100)
    assert streamed[1:] == whole[1:]
    np.testing.assert_array_equal(streamed[0].candidates, whole[0].candidates)
    # rows index the dump frames: row = step / 10 here
    assert (whole[0].candidates[:, 1] == 10 * whole[0].candidates[:, 2]).all()


# --- per-system and per-job levels through select() ----------------------------------------------

DEVI_F = [0.02, 0.08, 0.12, 0.18, 0.25, 0.35]  # steps 0, 10, ..., 50


def base_param(**kw):
    param = {"model_devi_jobs": [{"sys_idx": [0, 1]}], "model_devi_skip": 0,
             "model_devi_f_trust_lo": 0.05, "model_devi_f_trust_hi": 0.15,
             "model_devi_v_trust_lo": None, "model_devi_v_trust_hi": None,
             "model_devi_adapt_trust_lo": False, "model_devi_numb_candi_f": 10, "model_devi_numb_candi_v": 0,
             "model_devi_perc_candi_f": 0.0, "model_devi_perc_candi_v": 0.0, "model_devi_f_avg_relative": False,
             "fp_task_max": 100, "fp_task_min": 0, "fp_accurate_threshold": 1.0,
             "fp_accurate_soft_threshold": 1.0, "random_seed": 0, "convergence_accurate_ratio": None}
    param.update(kw)
    return param


def run_select(tmp_path, param, devi=None):
    md = tmp_path / "iter.000000" / "01.model_devi"
    for s in (0, 1):
        write_devi(md / f"task.{s:03d}.000000" / "model_devi.out", DEVI_F if devi is None else devi[s])
    summary = select(Context(param, {}, tmp_path), 0)
    assert summary == json.loads((tmp_path / "iter.000000" / "02.fp" / "selection.json").read_text())
    return summary


def chosen_steps(summary, sys_key):
    return sorted(step for _, step, _ in summary["systems"][sys_key]["chosen"])


def test_global_levels_pick_the_same_in_both_systems(tmp_path):
    summary = run_select(tmp_path, base_param())
    assert chosen_steps(summary, "000") == chosen_steps(summary, "001") == [10, 20]
    assert summary["trust_levels"]["f_lo"] == 0.05


def test_per_system_list_levels(tmp_path):
    summary = run_select(tmp_path, base_param(model_devi_f_trust_lo=[0.05, 0.15],
                                              model_devi_f_trust_hi=[0.15, 0.30]))
    assert chosen_steps(summary, "000") == [10, 20]
    assert chosen_steps(summary, "001") == [30, 40]  # 0.18, 0.25
    one = summary["systems"]["001"]
    assert (one["accurate"], one["candidate"], one["failed"]) == (3, 2, 1)
    assert one["trust_levels"] == {"f_lo": 0.15, "f_hi": 0.30, "v_lo": None, "v_hi": None}
    fp = tmp_path / "iter.000000" / "02.fp"
    assert sorted(fp.joinpath("candidate.shuffled.001.out").read_text().split("\n")[:-1]) == [
        "iter.000000/01.model_devi/task.001.000000 30", "iter.000000/01.model_devi/task.001.000000 40"]
    assert fp.joinpath("rest_failed.shuffled.001.out").read_text() == "iter.000000/01.model_devi/task.001.000000 50\n"
    assert len(fp.joinpath("rest_accurate.shuffled.001.out").read_text().splitlines()) == 3


def test_job_dict_overrides_the_global_list(tmp_path):
    param = base_param(model_devi_f_trust_lo=[0.05, 0.15], model_devi_f_trust_hi=[0.15, 0.30])
    param["model_devi_jobs"][0]["model_devi_f_trust_hi"] = {"0": 0.15, "1": 0.40}
    summary = run_select(tmp_path, param)
    assert chosen_steps(summary, "000") == [10, 20]
    assert chosen_steps(summary, "001") == [30, 40, 50]  # hi 0.40 from the job, lo 0.15 from the list
    assert summary["trust_levels"]["f_hi"] == {"0": 0.15, "1": 0.40}


# --- relative to the mean force ------------------------------------------------------------------

def test_f_avg_relative_divides_by_the_rms_force_of_the_trajectory(tmp_path):
    md = tmp_path / "iter.000000" / "01.model_devi"
    strong = np.tile([[2.0, 0.0, 0.0], [0.0, 0.0, -2.0]], (3, 1, 1))  # RMS 2 eV/Å
    weak = np.tile([[0.0, 0.1, 0.0], [0.0, 0.0, 0.1]], (3, 1, 1))     # RMS 0.1 eV/Å
    for k, forces in enumerate((strong, weak)):
        write_devi(md / f"task.000.{k:06d}" / "model_devi.out", [0.02, 0.1, 0.3])
        write_dump(md / f"task.000.{k:06d}" / "traj.dump", forces)
    assert dump_rms_force(md / "task.000.000000" / "traj.dump") == pytest.approx(2.0)
    # absolute levels 0.05/0.15 eV/Å: step 10 of both tasks
    summary = select(Context(base_param(model_devi_jobs=[{"sys_idx": [0]}]), {}, tmp_path), 0)
    assert sorted(c[:2] for c in summary["systems"]["000"]["chosen"]) == [
        ["iter.000000/01.model_devi/task.000.000000", 10], ["iter.000000/01.model_devi/task.000.000001", 10]]
    # relative, levels 0.05/0.15: strong -> 0.01, 0.05, 0.15 (step 10); weak -> 0.2, 1, 3 (all failed)
    summary = select(Context(base_param(model_devi_jobs=[{"sys_idx": [0]}], model_devi_f_avg_relative=True),
                             {}, tmp_path), 0)
    sys0 = summary["systems"]["000"]
    assert [c[:2] for c in sys0["chosen"]] == [["iter.000000/01.model_devi/task.000.000000", 10]]
    assert (sys0["accurate"], sys0["candidate"], sys0["failed"]) == (1, 1, 4)
    assert sys0["avg_force"] == {"iter.000000/01.model_devi/task.000.000000": pytest.approx(2.0),
                                 "iter.000000/01.model_devi/task.000.000001": pytest.approx(0.1)}


def test_dump_rms_force_is_dpgens_formula_and_skips_a_cut_frame(tmp_path):
    forces = np.random.default_rng(0).normal(size=(4, 5, 3))
    write_dump(tmp_path / "traj.dump", forces)
    expected = np.sqrt(np.average(np.sum(np.square(forces.reshape(-1, 3)), axis=1)))
    assert dump_rms_force(tmp_path / "traj.dump") == pytest.approx(expected)
    text = (tmp_path / "traj.dump").read_text().splitlines()
    (tmp_path / "traj.dump").write_text("\n".join(text[:-2]))  # last frame cut by a crash
    assert dump_rms_force(tmp_path / "traj.dump") == pytest.approx(
        np.sqrt(np.average(np.sum(np.square(forces[:3].reshape(-1, 3)), axis=1))))
    (tmp_path / "traj.dump").write_text("\n".join(text[:11]))  # not one whole frame: NaN (failed frames)
    assert np.isnan(dump_rms_force(tmp_path / "traj.dump"))


# --- adaptive lower level --------------------------------------------------------------------------

def test_adaptive_lower_level_picks_the_largest_non_failed(tmp_path):
    devi = [[0.01, 0.03, 0.20, 0.06], [0.02, 0.04, 0.05, 0.50]]
    # fixed levels 0.1/0.3: only 0.20 is a candidate in system 0, none in system 1
    fixed = run_select(tmp_path, base_param(model_devi_f_trust_lo=0.1, model_devi_f_trust_hi=0.3), devi)
    assert chosen_steps(fixed, "000") == [20] and chosen_steps(fixed, "001") == []
    # adaptive, 2 candidates per system: system 0 -> 0.20, 0.06 (lo 0.06); system 1 -> 0.05, 0.04 (lo 0.04)
    for numb, perc in ((2, 0.0), (1, 50.0)):  # int(50 % of 4 or 3 non-failed) -> 2 and 1: max(1, .) per system
        summary = run_select(tmp_path, base_param(model_devi_f_trust_lo=0.1, model_devi_f_trust_hi=0.3,
                                                  model_devi_adapt_trust_lo=True, model_devi_numb_candi_f=numb,
                                                  model_devi_perc_candi_f=perc), devi)
        s0, s1 = summary["systems"]["000"], summary["systems"]["001"]
        assert chosen_steps(summary, "000") == [20, 30]
        assert s0["trust_levels"]["f_lo"] == 0.06 and s0["trust_levels"]["f_hi"] == 0.3
        assert (s0["accurate"], s0["candidate"], s0["failed"]) == (2, 2, 0)
        if perc:  # 3 non-failed frames in system 1: int(1.5) = 1 candidate
            assert chosen_steps(summary, "001") == [20] and s1["trust_levels"]["f_lo"] == 0.05
        else:
            assert chosen_steps(summary, "001") == [10, 20] and s1["trust_levels"]["f_lo"] == 0.04
        assert s1["failed"] == 1
        assert summary["adapt_trust_lo"]["numb_f"] == numb


@pytest.mark.parametrize("adapt, v_hi", [
    (Adaptive(10, 0.0, 0, 0.0), None),
    (Adaptive(5, 12.5, 0, 0.0), 0.09),
    (Adaptive(0, 0.0, 7, 0.0), 0.09),
    (Adaptive(4, 0.0, 6, 3.0), 0.07),
    (Adaptive(1000, 0.0, 0, 0.0), None),  # more than there are frames
])
def test_adaptive_matches_dpgen_with_ties_across_blocks(tmp_path, monkeypatch, adapt, v_hi):
    rng = np.random.default_rng(11)
    tasks = []
    for k in range(4):  # values on a coarse grid: many ties, broken by task then step as in DP-GEN
        path = write_devi(tmp_path / f"task.000.{k:06d}" / "model_devi.out",
                          np.round(rng.uniform(0, 0.3, 120), 2), np.round(rng.uniform(0, 0.1, 120), 2))
        tasks.append(path.parent)
    monkeypatch.setattr(model_devi, "CHUNK_BYTES", 1000)  # ~8 rows per block: many evictions
    frames, acc, cand, fail = run_classify(tmp_path, tasks, TrustLevels(0.0, 0.25, None, v_hi), skip=50,
                                           adapt=adapt)
    ref_acc, ref_cand, ref_fail, f_lo, v_lo = dpgen_adaptive(
        [(str(t.relative_to(tmp_path)), t / "model_devi.out") for t in tasks], 0.25, adapt.numb_f, adapt.perc_f,
        1e10 if v_hi is None else v_hi, adapt.numb_v, adapt.perc_v, skip=50)
    assert sorted(acc) == sorted(ref_acc) and len(acc) == len(set(acc))
    assert sorted(cand) == sorted(ref_cand) and sorted(fail) == sorted(ref_fail)
    assert frames.counts.tolist() == [len(ref_acc), len(ref_cand), len(ref_fail)]
    assert frames.trust.f_lo == f_lo
    if adapt.numb_v or adapt.perc_v:
        assert frames.trust.v_lo == v_lo


# --- bad input at start ------------------------------------------------------------------------------

@pytest.fixture
def two_systems(cu_run):
    folder, param = cu_run
    param["sys_configs"] = [["000/POSCAR"], ["001/POSCAR"]]
    param["model_devi_jobs"][0]["sys_idx"] = [0, 1]
    return folder, param


def test_per_system_and_adaptive_keys_validate(two_systems):
    folder, param = two_systems
    param.update(model_devi_f_trust_lo=[0.1, 0.2], model_devi_f_trust_hi={"0": 0.3, "1": 0.4},
                 model_devi_v_trust_lo=0.01, model_devi_v_trust_hi=[0.05, 0.06])
    param["model_devi_jobs"][1]["model_devi_f_trust_hi"] = {"0": 0.5}
    validate_run(param, folder)
    param.update(model_devi_adapt_trust_lo=True, model_devi_numb_candi_f=20, model_devi_perc_candi_f=5.0,
                 model_devi_f_avg_relative=True)
    assert validate_run(param, folder)[0]["model_devi_numb_candi_f"] == 20


@pytest.mark.parametrize("mutate, expected", [
    (lambda p: p.update(model_devi_f_trust_lo=[0.1]),
     ["model_devi_f_trust_lo = [0.1]", "found 1 for 2 system(s)", "give 2 values"]),
    (lambda p: p.update(model_devi_f_trust_hi={"0": 0.3, "x": 0.4}), ["model_devi_f_trust_hi", "key 'x'", "\"0\"..\"1\""]),
    (lambda p: p.update(model_devi_f_trust_hi={"0": 0.3}), ["model_devi_f_trust_hi = {'0': 0.3}", "no level for system 1",
                                                            "model_devi_jobs[0]", "add \"1\""]),
    (lambda p: p.update(model_devi_f_trust_lo=[0.1, 0.5]),
     ["model_devi_jobs[0], system 1", "model_devi_f_trust_lo = 0.5", "lo < hi"]),
    (lambda p: p["model_devi_jobs"][1].update(model_devi_f_trust_lo={"0": 0.4}),
     ["model_devi_jobs[1], system 0", "model_devi_jobs[1].model_devi_f_trust_lo = 0.4", "lo < hi"]),
    (lambda p: p["model_devi_jobs"][2].update(sys_idx=[0, 1, 0]), ["model_devi_jobs[2].sys_idx = [0, 1, 0]",
                                                                   "[0] repeated", "each system once"]),
    (lambda p: p.update(model_devi_skip=1000), ["model_devi_skip = 1000", "model_devi_jobs[0].nsteps = 1000",
                                                "lower model_devi_skip"]),
    (lambda p: p.update(model_devi_adapt_trust_lo=True, model_devi_numb_candi_f=0),
     ["model_devi_numb_candi_f", "no frame would ever be a candidate"]),
    (lambda p: p.update(model_devi_adapt_trust_lo=True, model_devi_perc_candi_f=150.0),
     ["model_devi_perc_candi_f = 150.0", "[0, 100]"]),
    (lambda p: p.update(model_devi_f_avg_relative=True, use_relative=True, epsilon=0.1),
     ["model_devi_f_avg_relative = true", "use_relative", "keep one"]),
])
def test_bad_trust_input_is_refused(two_systems, mutate, expected):
    folder, param = two_systems
    mutate(param)
    with pytest.raises(ParamError) as err:
        validate_run(param, folder)
    for fragment in expected:
        assert fragment in str(err.value), (fragment, str(err.value))
