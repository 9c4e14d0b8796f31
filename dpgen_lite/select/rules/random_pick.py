"""``random``: DP-GEN's pick, uniformly at random among the candidates (the default)."""

from __future__ import annotations

import numpy as np

from .base import CandidateData, PickRule, register


@register
class RandomRule(PickRule):
    """DP-GEN's random pick among the candidates (cost: none)."""

    name = "random"

    def pick(self, candidates: np.ndarray, n: int, seed, data: CandidateData) -> tuple[np.ndarray, np.ndarray]:
        """Shuffle with ``seed`` and cut after ``n``: DP-GEN's ``np.random.shuffle`` then
        ``[:fp_task_max]``, and dpgen_lite's earlier pick, frame for frame."""
        order = np.random.default_rng(seed).permutation(len(candidates))
        shuffled = candidates[order]
        return shuffled[:max(n, 0)], shuffled[max(n, 0):]
