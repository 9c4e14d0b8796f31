"""Pick rules (fp_pick): which candidates get the fp tasks."""

import json

import numpy as np
import pytest

from dpgen_lite.explore.stage import make_model_devi, run_model_devi
from dpgen_lite.params import ParamError
from dpgen_lite.schema import validate_run
from dpgen_lite.select.model_devi import read_model_devi
from dpgen_lite.select.rules.base import CandidateData, pick_rule
from dpgen_lite.select.rules.fps import farthest_points
from dpgen_lite.select.stage import select

from .test_loop import tiny
from .test_md_lammps import run_folder
from .test_template import TEMPLATE, template_job


def rows(n: int) -> np.ndarray:
    """``n`` candidate rows ``task, step, row``."""
    return np.column_stack([np.zeros(n, dtype=np.int64), 10 * np.arange(n), np.arange(n)])


def data(devi=None, desc=None) -> CandidateData:
    def fail():
        raise AssertionError("not needed by this rule")
    return CandidateData((lambda: devi) if devi is not None else fail, (lambda: desc) if desc is not None else fail)


def test_random_is_dpgen_shuffle_seeded_and_partitions():
    """DP-GEN's pick: a seeded permutation cut after n; no deviation or descriptor is read."""
    cands = rows(50)
    rule = pick_rule({"fp_pick": {"rule": "random"}})
    chosen, rest = rule.pick(cands, 10, [1, 2, 3], data())
    again, _ = rule.pick(cands, 10, [1, 2, 3], data())
    other, _ = rule.pick(cands, 10, [1, 2, 4], data())
    np.testing.assert_array_equal(chosen, again)
    assert not np.array_equal(chosen, other)
    np.testing.assert_array_equal(np.concatenate([chosen, rest]), cands[np.random.default_rng([1, 2, 3]).permutation(50)])


def test_max_devi_takes_the_largest_deviations():
    devi = np.array([0.11, 0.29, 0.12, 0.25, 0.2, 0.29])
    chosen, rest = pick_rule({"fp_pick": {"rule": "max_devi"}}).pick(rows(6), 3, 0, data(devi=devi))
    assert chosen[:, 2].tolist() == [1, 5, 3]  # ties in candidate order
    assert sorted(rest[:, 2].tolist()) == [0, 2, 4]


def clusters() -> np.ndarray:
    """Descriptors of 3 clusters of near duplicates (10, 10, 2 frames) around far-apart centres."""
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    return np.concatenate([c + 0.01 * rng.standard_normal((m, 2)) for c, m in zip(centres, (10, 10, 2))])


def test_fps_covers_the_clusters_and_stops_on_duplicates():
    """From the largest deviation (in cluster 0), one frame of each other cluster next, not a
    near duplicate; with stop_ratio the budget shrinks to the 3 clusters."""
    desc = clusters()
    devi = np.full(len(desc), 0.12)
    devi[3] = 0.3
    chosen, _ = pick_rule({"fp_pick": {"rule": "fps", "stop_ratio": 0.0}}).pick(rows(22), 5, 0, data(devi, desc))
    first = chosen[:, 2].tolist()
    assert first[0] == 3 and {i // 10 for i in first[1:3]} == {1, 2}  # index 20, 21: cluster 2
    assert len(first) == 5
    adaptive, rest = pick_rule({"fp_pick": {"rule": "fps", "stop_ratio": 0.05}}).pick(rows(22), 5, 0, data(devi, desc))
    assert len(adaptive) == 3 and len(rest) == 19
    assert farthest_points(desc, 0, 30) == farthest_points(desc, 0, 30)[:22] and len(farthest_points(desc, 0, 30)) == 22


def test_fps_devi_weight_prefers_the_uncertain_of_two_far_clusters():
    """Clusters 1 and 2 lie equally far from the first pick; unweighted, the farther centre wins
    by a hair; weighted by deviation, the cluster the ensemble is unsure of wins, and within it
    the frame of largest deviation."""
    desc = clusters()
    desc[20:] += [0.0, 0.5]  # cluster 2 slightly farther from cluster 0 than cluster 1 is
    devi = np.full(len(desc), 0.11)
    devi[3], devi[10:20] = 0.3, np.linspace(0.2, 0.25, 10)
    plain, _ = pick_rule({"fp_pick": {"rule": "fps"}}).pick(rows(22), 2, 0, data(devi, desc))
    weighted, _ = pick_rule({"fp_pick": {"rule": "fps", "devi_weight": True}}).pick(rows(22), 2, 0, data(devi, desc))
    assert plain[:, 2].tolist()[1] in (20, 21)
    assert weighted[:, 2].tolist() == [3, 19]


def test_unknown_rule_is_refused(cu_run):
    folder, param = cu_run
    with pytest.raises(ParamError, match="fp_pick"):
        validate_run({**tiny(param, n_jobs=1), "fp_pick": {"rule": "best"}}, folder)


def test_fps_on_real_md_reads_descriptors_of_the_candidates(cu_run, models):
    """fp_pick fps after a real LAMMPS run (descriptors from deepmd-kit's eval_descriptor of the
    candidate frames): the first chosen frame has the largest deviation, no frame twice."""
    folder, param = cu_run
    ctx = run_folder(folder, param, models, [template_job()], TEMPLATE, sys_configs=[["001/POSCAR"]],
                     fp_task_max=5, fp_pick={"rule": "fps"})
    make_model_devi(ctx, 0)
    run_model_devi(ctx, 0)
    summary = select(ctx, 0)
    chosen = summary["systems"]["000"]["chosen"]
    assert len(chosen) == 5 and summary["systems"]["000"]["candidate"] == 28
    devi = {(t, r): read_model_devi(folder / t / "model_devi.out")[r, 4] for t, _, r in chosen}
    every = [read_model_devi(t / "model_devi.out")[:, 4].max() for t in sorted(ctx.path(0, "01.model_devi").glob("task.*"))]
    assert devi[(chosen[0][0], chosen[0][2])] == pytest.approx(max(every))
    assert len({(t, r) for t, _, r in chosen}) == 5
    assert json.loads((folder / "iter.000000/02.fp/selection.json").read_text())["systems"]["000"]["chosen"] == chosen
