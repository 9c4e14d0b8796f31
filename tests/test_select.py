"""Selection logic: trust-level classification, DP-GEN's candidate count, seeded picking."""

import numpy as np
import pytest

from dpgen_lite.select.model_devi import (ACCURATE, CANDIDATE, FAILED, TrustLevels, classify,
                                          number_to_label, read_model_devi)

TRUST = TrustLevels(0.05, 0.15)


def test_classify_force_boundaries():
    devi_f = np.array([0.0, 0.049, 0.05, 0.149, 0.15, 3.0])
    assert classify(devi_f, None, TRUST).tolist() == [ACCURATE, ACCURATE, CANDIDATE, CANDIDATE, FAILED, FAILED]


def test_nan_and_inf_deviation_are_failed_not_errors():
    devi_f = np.array([np.nan, np.inf, 0.01])
    assert classify(devi_f, None, TRUST).tolist() == [FAILED, FAILED, ACCURATE]


def test_virial_levels_join_the_force_levels():  # precedence: tests/test_trust.py
    trust = TrustLevels(0.05, 0.15, 0.01, 0.05)
    devi_f = np.array([0.01, 0.01, 0.01, 0.10, 0.01])
    devi_v = np.array([0.001, 0.02, 0.06, 0.001, np.nan])
    assert classify(devi_f, devi_v, trust).tolist() == [ACCURATE, CANDIDATE, FAILED, CANDIDATE, FAILED]


def test_virial_ignored_without_levels():
    devi_f = np.array([0.01])
    assert classify(devi_f, np.array([99.0]), TRUST).tolist() == [ACCURATE]


@pytest.mark.parametrize("n_cand, ratio, expect", [
    (100, 0.50, 20),   # below the soft threshold: fp_task_max
    (100, 0.995, 0),   # above the hard threshold: nothing
    (100, 0.95, 10),   # halfway between soft 0.9 and hard 1.0: half of 20
    (7, 0.50, 7),      # capped by the candidates
    (2, 0.50, 0),      # fewer than fp_task_min
])
def test_number_to_label(n_cand, ratio, expect):
    assert number_to_label(n_cand, ratio, 20, 3, accurate_threshold=0.99 if ratio == 0.995 else 1.0,
                           accurate_soft_threshold=0.9) == expect


def test_read_model_devi_with_nan(tmp_path):
    f = tmp_path / "model_devi.out"
    f.write_text("#  step max_devi_v min_devi_v avg_devi_v max_devi_f min_devi_f avg_devi_f\n"
                 "0 0.1 0.0 0.05 0.01 0.0 0.005\n"
                 "10 -nan -nan -nan nan nan nan\n")
    data = read_model_devi(f)
    assert data.shape == (2, 7)
    assert classify(data[:, 4], None, TRUST).tolist() == [ACCURATE, FAILED]


def test_read_model_devi_rejects_wrong_columns(tmp_path):
    f = tmp_path / "model_devi.out"
    f.write_text("0 1 2\n")
    with pytest.raises(ValueError, match="7 columns"):
        read_model_devi(f)
