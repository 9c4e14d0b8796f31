"""``max_devi``: the candidates of largest force deviation first."""

from __future__ import annotations

import numpy as np

from .base import CandidateData, PickRule, register


@register
class MaxDeviRule(PickRule):
    """Largest force deviation first (cost: one re-read of the deviation files)."""

    name = "max_devi"

    def order(self, n: int, data: CandidateData, rng: np.random.Generator) -> np.ndarray:
        """The ``n`` candidates of largest max force deviation; ties in candidate order."""
        return np.argsort(-data.get("devi_f"), kind="stable")[:n]
