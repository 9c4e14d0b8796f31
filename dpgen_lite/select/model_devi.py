"""Model deviation: reading ``model_devi.out``, trust levels, and how many candidates to label.

The force deviation of a frame is ε_f = max_i sqrt(<|F_i - <F_i>|^2>) over atoms i, the
average <.> taken over the model ensemble; the virial deviation ε_v is the same over the
virial components (per atom).  Both are written by deepmd-kit's LAMMPS ``pair_style
deepmd ... out_file model_devi.out`` (Zhang et al., DP-GEN, Comput. Phys. Commun. 253,
107206, 2020, Eq. 3).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ACCURATE, CANDIDATE, FAILED = 0, 1, 2
#: columns of deepmd-kit's model_devi.out
COL_STEP, COL_MAX_V, COL_MAX_F = 0, 1, 4
N_COLS = 7
#: text read and parsed at a time by :func:`iter_model_devi` (about 8 000 rows of 127 bytes)
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class TrustLevels:
    """Trust levels of the force (eV/Å) and, optionally, the virial (eV) deviation.

    A frame is a candidate when f_lo <= ε_f < f_hi or v_lo <= ε_v < v_hi, else failed
    when ε_f >= f_hi or ε_v >= v_hi, else accurate (DP-GEN's precedence, see :func:`classify`).
    With ``model_devi_f_avg_relative`` or ``use_relative`` the force levels are dimensionless.
    """

    f_lo: float
    f_hi: float
    v_lo: float | None = None
    v_hi: float | None = None


@dataclass(frozen=True)
class Adaptive:
    """DP-GEN's adaptive lower trust level (``model_devi_adapt_trust_lo``).

    Per system, among the frames not failed (ε_f <= f_hi and ε_v <= v_hi), the
    ``max(numb_f, int(perc_f * 0.01 * n))`` frames of largest ε_f and the
    ``max(numb_v, int(perc_v * 0.01 * n))`` of largest ε_v (each capped by n) are the
    candidates; the lower level becomes the smallest deviation so chosen (the upper level when
    none is).  ``perc_*`` are percentages (0-100).  DP-GEN's defaults: 10, 0.0, 0, 0.0.
    """

    numb_f: int = 10
    perc_f: float = 0.0
    numb_v: int = 0
    perc_v: float = 0.0

    def numbers(self, n_frames: int) -> tuple[int, int]:
        """How many candidates by force and by virial among ``n_frames`` non-failed frames."""
        n_f = max(self.numb_f, int(self.perc_f * 0.01 * n_frames))
        n_v = max(self.numb_v, int(self.perc_v * 0.01 * n_frames))
        return min(n_f, n_frames), min(n_v, n_frames)

    @property
    def needs_count(self) -> bool:
        """Whether the numbers depend on the frame count (a first counting pass is needed)."""
        return self.perc_f > 0 or self.perc_v > 0

    @property
    def uses_virial(self) -> bool:
        return self.numb_v > 0 or self.perc_v > 0


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


def iter_model_devi(path: Path, chunk_bytes: int | None = None) -> Iterator[np.ndarray]:
    """Read deepmd-kit's ``model_devi.out`` block by block, in file order.

    Memory is bounded by ``chunk_bytes`` of text (default :data:`CHUNK_BYTES`) whatever the
    length of the file.  Comment lines (``#``) are skipped; an unterminated last line that
    does not hold 7 numbers (the MD was killed while writing it) is dropped.

    The numbers are parsed by pandas' C reader (about 2.5 times ``np.loadtxt``'s speed; its
    float converter is fast_float from pandas 3.1, ``float_precision="round_trip"`` before), or
    by ``np.loadtxt`` when pandas is missing (:data:`READER`) or the file ends in a cut line.
    All of these round correctly, so the values are the very ones DP-GEN's ``np.loadtxt`` reads.

    Yields
    ------
    np.ndarray
        ``(n, 7)`` blocks, the rows of :func:`read_model_devi` in the same order.

    Raises
    ------
    ValueError
        if the file has not 7 columns, or a line has more (with ``np.loadtxt``: other than 7;
        with pandas a shorter line reads as NaN, a failed frame).
    """
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    with open(path, "rb") as fh:
        cut = _cut_tail(fh)
    if READER == "pandas" and not cut:
        try:
            import pandas as pd
        except ImportError:
            pass
        else:
            yield from _pandas_blocks(pd, path, max(chunk_bytes // 128, 1))
            return
    yield from _numpy_blocks(path, chunk_bytes)


#: "pandas" (fast) or "numpy" (np.loadtxt of blocks of lines)
READER = "pandas"


def _cut_tail(fh) -> bool:
    """Whether the file ends in a line without its newline (a run killed while writing)."""
    size = fh.seek(0, 2)
    if size == 0:
        return False
    fh.seek(max(0, size - 1))
    return fh.read(1) != b"\n"


def _pandas_blocks(pd, path: Path, rows: int) -> Iterator[np.ndarray]:
    try:
        reader = pd.read_csv(path, sep=r"\s+", comment="#", header=None, dtype=np.float64, engine="c",
                             chunksize=rows, **_exact_floats(pd))
    except pd.errors.EmptyDataError:  # no data line
        return
    with reader:
        try:
            for frame in reader:
                block = frame.to_numpy()
                if block.shape[1] != N_COLS:
                    raise ValueError(f"{path}: expected 7 columns in a model_devi.out file, found {block.shape[1]}")
                yield block
        except (ValueError, TypeError) as err:  # pandas' ParserError is a ValueError
            if str(path) in str(err):
                raise
            raise ValueError(f"{path}: expected 7 columns of numbers in a model_devi.out file: {err}") from None


def _exact_floats(pd) -> dict:
    """read_csv's option for correctly rounded floats: pandas >= 3.1 always is (fast_float) and
    deprecates ``float_precision``; before, the default converter may be off by one ulp."""
    try:
        major, minor = (int(x) for x in pd.__version__.split(".")[:2])
    except ValueError:
        return {}
    return {} if (major, minor) >= (3, 1) else {"float_precision": "round_trip"}


def _numpy_blocks(path: Path, chunk_bytes: int) -> Iterator[np.ndarray]:
    with open(path, "rb") as fh:
        while True:
            lines = fh.readlines(chunk_bytes)
            if not lines:
                return
            if not lines[-1].endswith(b"\n") and not _complete(lines[-1]):
                lines.pop()
            if not lines or _no_data(lines[0]) and all(_no_data(line) for line in lines):
                continue
            try:
                block = np.loadtxt(lines, ndmin=2, comments="#", dtype=float)
            except ValueError as err:
                raise ValueError(f"{path}: expected 7 columns in a model_devi.out file: {err}") from None
            if block.size == 0:
                continue
            if block.shape[1] != N_COLS:
                raise ValueError(f"{path}: expected 7 columns in a model_devi.out file, found {block.shape[1]}")
            yield block


def _complete(line: bytes) -> bool:
    """A comment, or 7 numbers."""
    if _no_data(line):
        return True
    fields = line.split()
    try:
        [float(x) for x in fields]
    except ValueError:
        return False
    return len(fields) == N_COLS


def _no_data(line: bytes) -> bool:
    line = line.strip()
    return not line or line.startswith(b"#")


def dump_rms_force(path: Path) -> float:
    """RMS force norm over every atom of every frame of a LAMMPS ``dump custom`` file, eV/Å.

    sqrt(<|F_i|^2>) with the average over atoms and frames: the normalization of DP-GEN's
    ``model_devi_f_avg_relative`` (``_read_model_devi_file``).  Read frame by frame; an
    incomplete last frame (crashed MD) is left out.  NaN when there is no complete frame
    (the relative deviations are then NaN: failed frames).

    Raises
    ------
    ValueError
        if the dump has no ``fx fy fz`` columns.
    """
    total, count = 0.0, 0
    natoms = None
    with open(path, "rb") as fh:
        for line in fh:
            if line.startswith(b"ITEM: NUMBER OF ATOMS"):
                natoms = int(fh.readline())
            elif line.startswith(b"ITEM: ATOMS"):
                cols = line.split()[2:]
                if b"fx" not in cols:
                    raise ValueError(f"{path}: no fx fy fz columns in the dump; model_devi_f_avg_relative "
                                     "needs the forces of the trajectory")
                ifx = cols.index(b"fx")
                rows = [fh.readline() for _ in range(natoms)]
                if not rows or not rows[-1].endswith(b"\n") or len(rows[-1].split()) != len(cols):
                    break
                forces = np.loadtxt(rows, ndmin=2, usecols=(ifx, ifx + 1, ifx + 2))
                total += float(np.sum(forces * forces))
                count += natoms
    if not count:
        return float("nan")
    return float(np.sqrt(total / count))


class TopFrames:
    """The ``n`` frames of largest deviation seen so far, in memory O(n).

    Frames are ordered as DP-GEN sorts its ``[value, task, step]`` lists
    (``_select_by_model_devi_adaptive_trust_low``): by value, then task, then step, so ties
    are broken as there.  Arrays are kept in ascending order.
    """

    def __init__(self, n: int):
        self.n = n
        self.value = np.empty(0)
        self.task = self.step = self.row = np.empty(0, dtype=np.int64)

    def add(self, value, task, step, row) -> tuple[np.ndarray, ...]:
        """Offer frames; return those not (or no longer) kept: ``(task, step, row)`` arrays."""
        if self.n == 0:
            return task, step, row
        if len(self.value) == self.n:  # full: only frames at or above the smallest kept can enter
            enter = value >= self.value[0]
            out = (task[~enter], step[~enter], row[~enter])
            value, task, step, row = value[enter], task[enter], step[enter], row[enter]
        else:
            out = (np.empty(0, dtype=np.int64),) * 3
        if not len(value):
            return out
        v = np.concatenate([self.value, value])
        t, s, r = (np.concatenate([a, b]) for a, b in ((self.task, task), (self.step, step), (self.row, row)))
        order = np.lexsort((s, t, v))
        keep, drop = order[-self.n:], order[:-self.n]
        self.value, self.task, self.step, self.row = v[keep], t[keep], s[keep], r[keep]
        return tuple(np.concatenate([o, a[drop]]) for o, a in zip(out, (t, s, r)))

    @property
    def lowest(self) -> float | None:
        """The smallest deviation kept (DP-GEN's adapted lower level), None when empty."""
        return float(self.value[0]) if len(self.value) else None


def classify(devi_f: np.ndarray, devi_v: np.ndarray | None, trust: TrustLevels) -> np.ndarray:
    """Classify frames as ACCURATE (0), CANDIDATE (1) or FAILED (2), DP-GEN's way.

    A frame is a candidate when its force deviation lies in ``[f_lo, f_hi)`` *or* its virial
    deviation in ``[v_lo, v_hi)``; otherwise failed when either reaches its upper level;
    otherwise accurate (DP-GEN's ``_select_by_model_devi_standard``).  So a candidate force
    with a failed virial is a candidate, as in DP-GEN.

    Parameters
    ----------
    devi_f : (n_frames,) max force deviation, eV/Å (or dimensionless when relative)
    devi_v : (n_frames,) max virial deviation, eV, or None to ignore virials
    trust : the trust levels; without virial levels the virial is ignored (DP-GEN's 1e10 defaults)

    A NaN or infinite deviation (force, or virial when it is used) makes the frame FAILED,
    never accurate or a candidate (DP-GEN raises "should not happen" on NaN).
    """
    devi_f = np.asarray(devi_f, dtype=float)
    bad = ~np.isfinite(devi_f)
    with np.errstate(invalid="ignore"):
        candidate = (devi_f >= trust.f_lo) & (devi_f < trust.f_hi)
        failed = devi_f >= trust.f_hi
        if devi_v is not None and trust.v_lo is not None:
            devi_v = np.asarray(devi_v, dtype=float)
            bad |= ~np.isfinite(devi_v)
            candidate |= (devi_v >= trust.v_lo) & (devi_v < trust.v_hi)
            failed |= devi_v >= trust.v_hi
    labels = np.full(devi_f.shape, ACCURATE, dtype=np.int8)
    labels[failed] = FAILED
    labels[candidate] = CANDIDATE
    labels[bad] = FAILED
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
