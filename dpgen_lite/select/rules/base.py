"""Pick rules: which of a system's candidates are labelled.

A rule is one class registered in :data:`RULES` (a module of this package) that owns its
``fp_pick`` keys (:meth:`PickRule.args`) and picks ``n`` of a system's candidates
(:meth:`PickRule.pick`).  What it may look at comes from a :class:`CandidateData`: each
candidate's force deviation and, computed only when asked for, its descriptor (the ensemble's
first model's ``DeepPot.eval_descriptor``, averaged over the atoms of each type).  The same
seed gives the same pick, so a redone selection labels the same frames.

``param.json``: ``"fp_pick": {"rule": "random"}`` (DP-GEN's random pick, the default),
``{"rule": "max_devi"}`` or ``{"rule": "fps", "stop_ratio": 0.2}`` (:mod:`.fps`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from dargs import Argument, Variant

from ...params import normalize
from ...registry import Registry

RULES = Registry("dpgen_lite.select.rules", "fp_pick rule")
register = RULES.register


@dataclass
class CandidateData:
    """What a rule may look at for one system's candidates (``(n, 3)`` rows ``task, step, row``).

    Parameters
    ----------
    devi_f : () -> ``(n,)`` max force deviation of each candidate, eV/Å
    descriptors : () -> ``(n, d)`` frame descriptors (per-type mean of the atomic descriptors)
    """

    devi_f: Callable[[], np.ndarray]
    descriptors: Callable[[], np.ndarray]
    _cache: dict = field(default_factory=dict)

    def get(self, what: str) -> np.ndarray:
        """``devi_f`` or ``descriptors``, computed once."""
        if what not in self._cache:
            self._cache[what] = np.asarray(getattr(self, what)())
        return self._cache[what]


class PickRule:
    """One way to choose the candidates to label.

    Parameters
    ----------
    settings : the rule's ``fp_pick`` keys (normalized)
    """

    name: ClassVar[str]

    def __init__(self, settings: dict):
        self.settings = settings

    @classmethod
    def args(cls) -> list[Argument]:
        """The rule's own ``fp_pick`` keys (dargs)."""
        return []

    def order(self, n: int, data: CandidateData, rng: np.random.Generator) -> np.ndarray:
        """Indices of the candidates to label, at most ``n``, best first."""
        raise NotImplementedError

    def pick(self, candidates: np.ndarray, n: int, seed, data: CandidateData) -> tuple[np.ndarray, np.ndarray]:
        """``(chosen, rest)`` rows of ``candidates`` (``(m, 3)``): at most ``n`` chosen
        (:meth:`order`), the rest shuffled with the same seed (DP-GEN's order of the candidate file)."""
        rng = np.random.default_rng(seed)
        if n <= 0 or not len(candidates):
            return candidates[:0], candidates[rng.permutation(len(candidates))]
        chosen = np.asarray(self.order(min(n, len(candidates)), data, rng), dtype=np.int64)
        rest = np.setdiff1d(np.arange(len(candidates)), chosen)
        return candidates[chosen], candidates[rest[rng.permutation(len(rest))]]


def pick_args() -> Argument:
    """``fp_pick``: one choice per registered rule (default ``random``)."""
    RULES.load()
    return Argument("fp_pick", dict, optional=True, default={"rule": "random"},
                    sub_variants=[Variant("rule", [Argument(name, dict, sub_fields=cls.args(),
                                                            doc=(cls.__doc__ or "").strip())
                                                   for name, cls in sorted(RULES.items())],
                                          optional=True, default_tag="random")],
                    doc="which candidates of a system get the fp tasks (fp_task_max of them at most)")


def pick_rule(param: dict) -> PickRule:
    """The rule ``param["fp_pick"]`` names, its keys checked and their defaults filled.

    Raises
    ------
    ParamError
        an unknown rule or key, or a value of the wrong type.
    """
    settings = normalize(pick_args(), dict(param.get("fp_pick") or {"rule": "random"}), "fp_pick")
    return RULES.get(settings.pop("rule", "random"))(settings)
