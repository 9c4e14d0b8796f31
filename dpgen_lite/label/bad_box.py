"""``fp_skip_bad_box``: drop frames whose MD box degenerated before they cost a DFT run.

DP-GEN syntax: ``"fp_skip_bad_box": "length_ratio:5;height_ratio:5"`` -- ``;``-separated
``criterion:threshold`` pairs; a frame is bad when any criterion exceeds its threshold.
Criteria (as DP-GEN's ``check_bad_box``; cell rows are the vectors a, b, c in Å):

- ``length_ratio``: longest / shortest cell vector, ``max(|a|,|b|,|c|) / min(|a|,|b|,|c|)``;
- ``height_ratio``: longest cell vector / smallest height between opposite faces,
  ``max(|a|,|b|,|c|) / min(V/|a x b|, V/|b x c|, V/|c x a|)`` with V the cell volume;
- ``wrap_ratio``: largest of ``|b_x/a_x|, |c_y/b_y|, |c_x/a_x|`` (a vector wrapped over another);
- ``tilt_ratio``: largest of ``|b_x/b_y|, |c_y/c_z|, |c_x/c_z|`` (tilt of a LAMMPS triclinic box).

``wrap_ratio`` and ``tilt_ratio`` assume a lower-triangular cell (LAMMPS convention).
"""

from __future__ import annotations

import numpy as np

CRITERIA = ("length_ratio", "height_ratio", "wrap_ratio", "tilt_ratio")


def parse_skip_bad_box(spec: str) -> dict[str, float]:
    """Parse DP-GEN's ``fp_skip_bad_box`` string into ``{criterion: threshold}``.

    ``"length_ratio:5;height_ratio:5"`` -> ``{"length_ratio": 5.0, "height_ratio": 5.0}``.
    Spaces and a trailing ``;`` are tolerated.

    Raises
    ------
    ValueError
        for an empty spec, an item that is not ``key:value``, an unknown key (the message
        lists the allowed ones), a value that is not a positive number, or a repeated key.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"fp_skip_bad_box = {spec!r}: expected e.g. 'length_ratio:5;height_ratio:5'")
    out: dict[str, float] = {}
    for item in filter(None, (s.strip() for s in spec.split(";"))):
        key, sep, value = (s.strip() for s in item.partition(":"))
        if not sep:
            raise ValueError(f"fp_skip_bad_box = {spec!r}: item {item!r} is not 'key:value', "
                             "e.g. 'length_ratio:5;height_ratio:5'")
        if key not in CRITERIA:
            raise ValueError(f"fp_skip_bad_box = {spec!r}: unknown key {key!r}; allowed {', '.join(CRITERIA)}")
        if key in out:
            raise ValueError(f"fp_skip_bad_box = {spec!r}: key {key!r} given twice")
        try:
            threshold = float(value)
        except ValueError:
            threshold = float("nan")
        if not np.isfinite(threshold) or threshold <= 0:
            raise ValueError(f"fp_skip_bad_box = {spec!r}: {key} = {value!r} is not a positive number")
        out[key] = threshold
    return out


def box_ratios(cell) -> dict[str, float]:
    """All four criteria of ``cell`` ((3, 3) array-like, rows a, b, c in Å), dimensionless.

    A degenerate (zero-volume) cell gives ``inf`` for ``height_ratio``; a zero diagonal
    element gives ``inf`` for the wrap/tilt ratios that divide by it.

    Raises
    ------
    ValueError
        if ``cell`` is not of shape (3, 3).
    """
    c = np.asarray(cell, dtype=float)
    if c.shape != (3, 3):
        raise ValueError(f"cell of shape {c.shape}: expected (3, 3)")
    lengths = np.linalg.norm(c, axis=1)
    volume = abs(np.linalg.det(c))
    areas = [np.linalg.norm(np.cross(c[i], c[j])) for i, j in ((0, 1), (1, 2), (2, 0))]
    heights = [volume / s if s > 0 else 0.0 for s in areas]

    def ratio(num, den):
        return abs(num / den) if den != 0 else (0.0 if num == 0 else float("inf"))

    return {
        "length_ratio": ratio(lengths.max(), lengths.min()),
        "height_ratio": ratio(lengths.max(), min(heights)),
        "wrap_ratio": max(ratio(c[1, 0], c[0, 0]), ratio(c[2, 1], c[1, 1]), ratio(c[2, 0], c[0, 0])),
        "tilt_ratio": max(ratio(c[1, 0], c[1, 1]), ratio(c[2, 1], c[2, 2]), ratio(c[2, 0], c[2, 2])),
    }


def is_bad_box(cell, criteria: dict[str, float]) -> bool:
    """True when any criterion of ``cell`` ((3, 3), Å) exceeds its threshold in ``criteria``.

    ``criteria`` is the output of :func:`parse_skip_bad_box`; an empty dict accepts every box.

    Raises
    ------
    ValueError
        if ``cell`` is not (3, 3) or ``criteria`` names an unknown criterion.
    """
    unknown = set(criteria) - set(CRITERIA)
    if unknown:
        raise ValueError(f"unknown bad-box criteria {sorted(unknown)}; allowed {', '.join(CRITERIA)}")
    ratios = box_ratios(cell)
    return any(ratios[key] > threshold for key, threshold in criteria.items())
