"""``fps``: farthest-point sampling of the candidates in the ensemble's descriptor space.

The first pick is the candidate of largest force deviation; each next one is the candidate
farthest (Euclidean distance of the frame descriptors) from every pick so far, so that the
labels cover the candidates instead of repeating one region of one trajectory.  With
``stop_ratio`` > 0 the budget adapts: picking stops once the farthest candidate lies closer
than ``stop_ratio`` times the spread of the candidates (the largest distance from the first
pick), i.e. the rest are near duplicates of what is labelled.  With ``devi_weight`` the next pick
maximises distance × force deviation / largest deviation instead of the distance alone
(uncertainty and diversity together, as in batch active learning: the farthest of the frames the
ensemble is unsure of).  Cost: the descriptors of every
candidate (one ``eval_descriptor`` pass of one model, in batches) and O(n × picks) distances.
"""

from __future__ import annotations

import numpy as np
from dargs import Argument

from ...params import arg
from .base import CandidateData, PickRule, register


def farthest_points(x: np.ndarray, first: int, n: int, stop_ratio: float = 0.0,
                    weight: np.ndarray | None = None) -> list[int]:
    """Farthest-point sampling of the rows of ``x`` (``(m, d)``) from row ``first``: at most ``n``
    indices, stopping when the next distance falls below ``stop_ratio`` × the first spread.
    With ``weight`` (``(m,)``, ≥ 0) the next row maximises distance × weight."""
    chosen = [first]
    dist = np.linalg.norm(x - x[first], axis=1)
    spread = float(dist.max())
    while len(chosen) < n:
        k = int(np.argmax(dist if weight is None else dist * weight))
        if dist[k] <= 0 or dist[k] < stop_ratio * spread:
            break
        chosen.append(k)
        dist = np.minimum(dist, np.linalg.norm(x - x[k], axis=1))
    return chosen


@register
class FarthestPointRule(PickRule):
    """Farthest-point sampling in descriptor space from the largest deviation (cost: one
    descriptor evaluation per candidate)."""

    name = "fps"

    @classmethod
    def args(cls) -> list[Argument]:
        return [arg("stop_ratio", float, "stop when the farthest candidate is closer than this share of the "
                    "candidates' spread (0: always fp_task_max)", default=0.0),
                arg("devi_weight", bool, "weigh the distances by the force deviation (the farthest of the "
                    "uncertain frames first)", default=False)]

    def order(self, n: int, data: CandidateData, rng: np.random.Generator) -> np.ndarray:
        devi = data.get("devi_f")
        weight = devi / devi.max() if self.settings["devi_weight"] and devi.max() > 0 else None
        return np.array(farthest_points(data.get("descriptors"), int(np.argmax(devi)), n,
                                        self.settings["stop_ratio"], weight))
