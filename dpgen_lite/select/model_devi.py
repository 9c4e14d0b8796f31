"""Model deviation: reading ``model_devi.out``, trust levels, and how many candidates to label.

The force deviation of a frame is ε_f = max_i sqrt(<|F_i - <F_i>|^2>) over atoms i, the
average <.> taken over the model ensemble; the virial deviation ε_v is the same over the
virial components (per atom).  Both are written by deepmd-kit's LAMMPS ``pair_style
deepmd ... out_file model_devi.out`` (Zhang et al., DP-GEN, Comput. Phys. Commun. 253,
107206, 2020, Eq. 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

ACCURATE, CANDIDATE, FAILED = 0, 1, 2
#: columns of deepmd-kit's model_devi.out
COL_STEP, COL_MAX_V, COL_MAX_F = 0, 1, 4


@dataclass(frozen=True)
class TrustLevels:
    """Trust levels of the force (eV/Å) and, optionally, the virial (eV) deviation.

    A frame is accurate when ε_f < f_lo (and ε_v < v_lo), failed when ε_f ≥ f_hi
    (or ε_v ≥ v_hi), a candidate otherwise.
    """

    f_lo: float
    f_hi: float
    v_lo: float | None = None
    v_hi: float | None = None


def read_model_devi(path: Path) -> np.ndarray:
    """Read deepmd-kit's ``model_devi.out``.

    Returns
    -------
    np.ndarray
        ``(n_frames, 7)``: step, max/min/avg virial deviation (eV), max/min/avg force
        deviation (eV/Å).  ``nan`` entries are kept (they are classified as failed).

    Raises
    ------
    ValueError
        if the file has not 7 columns.
    """
    data = np.loadtxt(path, ndmin=2, comments="#")
    if data.size and data.shape[1] != 7:
        raise ValueError(f"{path}: expected 7 columns in a model_devi.out file, found {data.shape[1]}")
    return data.reshape(-1, 7)


def classify(devi_f: np.ndarray, devi_v: np.ndarray | None, trust: TrustLevels) -> np.ndarray:
    """Classify frames as ACCURATE (0), CANDIDATE (1) or FAILED (2).

    Parameters
    ----------
    devi_f : (n_frames,) max force deviation, eV/Å
    devi_v : (n_frames,) max virial deviation, eV, or None to ignore virials
    trust : the trust levels

    A NaN deviation counts as FAILED (the models disagree without bound), never as accurate.
    """
    devi_f = np.asarray(devi_f, dtype=float)
    failed = ~np.isfinite(devi_f) | (devi_f >= trust.f_hi)
    accurate = devi_f < trust.f_lo
    if devi_v is not None and trust.v_lo is not None:
        devi_v = np.asarray(devi_v, dtype=float)
        failed |= ~np.isfinite(devi_v) | (devi_v >= trust.v_hi)
        accurate &= devi_v < trust.v_lo
    labels = np.full(devi_f.shape, CANDIDATE, dtype=np.int8)
    labels[accurate] = ACCURATE
    labels[failed] = FAILED
    return labels


def number_to_label(
    n_candidate: int,
    accurate_ratio: float,
    fp_task_max: int,
    fp_task_min: int,
    accurate_threshold: float = 1.0,
    accurate_soft_threshold: float = 1.0,
) -> int:
    """How many candidates of one system get an fp task (DP-GEN's rule).

    Above ``accurate_threshold`` none; between the soft and the hard threshold
    ``fp_task_max`` scaled linearly down to 0; below the soft one ``fp_task_max``.
    Capped by ``n_candidate``; a number under ``fp_task_min`` becomes 0.

    Parameters
    ----------
    n_candidate : candidates of the system
    accurate_ratio : accurate frames / all frames of the system, in [0, 1]
    """
    if accurate_ratio >= accurate_threshold:
        n = 0
    elif accurate_ratio > accurate_soft_threshold:
        scale = (accurate_threshold - accurate_ratio) / (accurate_threshold - accurate_soft_threshold)
        n = int(fp_task_max * scale)
    else:
        n = fp_task_max
    n = min(n, n_candidate)
    return n if n >= fp_task_min else 0


def pick(candidates: list, n: int, seed: int | list[int]) -> tuple[list, list]:
    """Shuffle ``candidates`` with a seeded generator; return ``(chosen[:n], rest)``.

    The same seed gives the same pick, so a resumed run labels the same frames.
    """
    order = np.random.default_rng(seed).permutation(len(candidates))
    shuffled = [candidates[i] for i in order]
    return shuffled[:n], shuffled[n:]
