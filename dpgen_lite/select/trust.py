"""Trust levels as DP-GEN has them: per system, per job, relative to the mean force, adaptive.

Keys (DP-GEN 0.14's ``model_devi_*``; forces in eV/Å, virials in eV):

* ``model_devi_f_trust_lo/hi``, ``model_devi_v_trust_lo/hi``: a number, a list with one level
  per ``sys_configs`` entry (indexed by the system index), or a dict ``{"<sys_idx>": level}``;
  at the top level and in a ``model_devi_jobs`` entry, where the job's value replaces the
  top-level one for that job (each key on its own).  DP-GEN: ``make_fp`` reads the job's
  values (``cur_job.json``) and ``_make_fp_vasp_inner._trust_limitation_check`` indexes a
  list by ``sys_idx`` and a dict by ``str(sys_idx)``.
* ``model_devi_f_avg_relative``: the force deviation is divided by the RMS force of the
  task's trajectory (DP-GEN's ``_read_model_devi_file``), the levels are then dimensionless.
* ``model_devi_adapt_trust_lo`` with ``model_devi_numb_candi_f/v`` and
  ``model_devi_perc_candi_f/v``: the lower levels are set per system so that the
  ``max(numb, int(perc/100 * n))`` non-failed frames of largest deviation are the candidates
  (DP-GEN's ``_select_by_model_devi_adaptive_trust_low``).
"""

from __future__ import annotations

from numbers import Real

from dargs import Argument

from ..params import arg, require
from .model_devi import Adaptive, TrustLevels

TRUST_KEYS = ("model_devi_f_trust_lo", "model_devi_f_trust_hi", "model_devi_v_trust_lo", "model_devi_v_trust_hi")
_LEVEL_TYPES = [float, list, dict]
_PER_SYSTEM = ("a number, a list with one level per sys_configs entry, or a dict {\"<sys_idx>\": level}")


def trust_args() -> list[Argument]:
    """Top-level trust-level and selection keys (DP-GEN's ``model_devi_lmp_args``)."""
    return [
        arg("model_devi_f_trust_lo", _LEVEL_TYPES, "force deviation below which a frame is accurate, eV/Å "
            f"(dimensionless with model_devi_f_avg_relative or use_relative): {_PER_SYSTEM}"),
        arg("model_devi_f_trust_hi", _LEVEL_TYPES, "force deviation from which a frame is failed, eV/Å: "
            + _PER_SYSTEM),
        arg("model_devi_v_trust_lo", _LEVEL_TYPES, "virial deviation below which a frame is accurate, eV: "
            + _PER_SYSTEM, default=None),
        arg("model_devi_v_trust_hi", _LEVEL_TYPES, "virial deviation from which a frame is failed, eV: "
            + _PER_SYSTEM, default=None),
        arg("model_devi_adapt_trust_lo", bool, "set the lower trust levels per system so that the frames of "
            "largest deviation below the upper level are the candidates (model_devi_numb_candi_f/v, "
            "model_devi_perc_candi_f/v)", default=False),
        arg("model_devi_numb_candi_f", int, "with model_devi_adapt_trust_lo: at least this many candidates "
            "per system by force deviation", default=10),
        arg("model_devi_numb_candi_v", int, "with model_devi_adapt_trust_lo: at least this many candidates "
            "per system by virial deviation", default=0),
        arg("model_devi_perc_candi_f", float, "with model_devi_adapt_trust_lo: at least this percentage "
            "(0-100) of the non-failed frames of a system are candidates by force deviation", default=0.0),
        arg("model_devi_perc_candi_v", float, "with model_devi_adapt_trust_lo: the same by virial deviation",
            default=0.0),
        arg("model_devi_f_avg_relative", bool, "divide the force deviation by the RMS force of the task's "
            "trajectory; the force trust levels are then dimensionless", default=False),
    ]


def job_trust_args() -> list[Argument]:
    """Per-job trust levels (a ``model_devi_jobs`` entry's, replacing the top-level ones)."""
    return [arg(k, _LEVEL_TYPES, "this job's level (default: the top-level one): " + _PER_SYSTEM, default=None)
            for k in TRUST_KEYS]


def job_trust(param: dict, job: dict) -> dict:
    """The four trust-level values of ``job``: its own where given (DP-GEN's per-job keys), else the
    top-level ones.  Each may be a number, a per-system list or dict, or None (no virial level)."""
    return {k: job[k] if job.get(k) is not None else param[k] for k in TRUST_KEYS}


def level_of(value, sys_idx: int):
    """The level of system ``sys_idx`` in a number, a list (by index) or a dict (by ``str(sys_idx)``,
    DP-GEN's ``_trust_limitation_check``; keys such as ``"001"`` are read as 1 too).

    Raises
    ------
    KeyError, IndexError
        when the list or dict has no level for ``sys_idx``.
    """
    if isinstance(value, list):
        return value[sys_idx]
    if isinstance(value, dict):
        if str(sys_idx) in value:
            return value[str(sys_idx)]
        for key, level in value.items():
            if _int_key(key) == sys_idx:
                return level
        raise KeyError(str(sys_idx))
    return value


def system_trust(param: dict, job: dict, sys_idx: int) -> TrustLevels:
    """The trust levels applied to system ``sys_idx`` in ``job`` (before any adaptation)."""
    levels = job_trust(param, job)
    return TrustLevels(*(None if levels[k] is None else float(level_of(levels[k], sys_idx)) for k in TRUST_KEYS))


def adaptive(param: dict) -> Adaptive | None:
    """The adaptive lower trust level settings, or None when ``model_devi_adapt_trust_lo`` is off."""
    if not param.get("model_devi_adapt_trust_lo"):
        return None
    return Adaptive(param["model_devi_numb_candi_f"], param["model_devi_perc_candi_f"],
                    param["model_devi_numb_candi_v"], param["model_devi_perc_candi_v"])


def _int_key(key) -> int | None:
    try:
        return int(key)
    except (TypeError, ValueError):
        return None


def _is_number(x) -> bool:
    return isinstance(x, Real) and not isinstance(x, bool)


def _check_shape(key: str, value, n_systems: int, where: str) -> None:
    """A per-system list has one number per system; a dict's keys are system indices."""
    name = f"{where}{key}"
    if isinstance(value, list):
        require(len(value) == n_systems,
                f"{name} = {value}: a list gives one level per sys_configs entry, indexed by sys_idx; found "
                f"{len(value)} for {n_systems} system(s): give {n_systems} values or a single number")
        bad = [x for x in value if not _is_number(x)]
        require(not bad, f"{name} = {value}: {bad} not a number")
    elif isinstance(value, dict):
        for k, level in value.items():
            idx = _int_key(k)
            require(idx is not None and 0 <= idx < n_systems,
                    f"{name} = {value}: key {k!r} is not a system index; keys are sys_idx values "
                    f"\"0\"..\"{n_systems - 1}\"")
            require(_is_number(level), f"{name}[{k!r}] = {level!r}: not a number")
        idx = [_int_key(k) for k in value]
        require(len(set(idx)) == len(idx), f"{name} = {value}: a system appears twice among the keys")


def _check_levels(levels: TrustLevels, names: dict, where: str, adapt: bool) -> None:
    """0 <= lo < hi; both virial levels or neither (the lower levels are not used when adaptive)."""
    f_lo, f_hi, v_lo, v_hi = levels.f_lo, levels.f_hi, levels.v_lo, levels.v_hi
    if adapt:
        require(f_hi > 0, f"{where}{names['f_hi']} = {f_hi}: must be > 0 (eV/Å)")
        require(v_hi is None or v_hi > 0, f"{where}{names['v_hi']} = {v_hi}: must be > 0 (eV)")
        return
    require(0 <= f_lo < f_hi, f"{where}{names['f_lo']} = {f_lo}, {names['f_hi']} = {f_hi}: "
            "need 0 <= lo < hi (eV/Å), e.g. 0.05 and 0.15")
    require((v_lo is None) == (v_hi is None), f"{where}{names['v_lo']} = {v_lo}, {names['v_hi']} = "
            f"{v_hi}: give both or neither")
    if v_lo is not None:
        require(0 <= v_lo < v_hi, f"{where}{names['v_lo']} = {v_lo}, {names['v_hi']} = {v_hi}: "
                "need 0 <= lo < hi (eV)")


def check_trust(param: dict, n_systems: int) -> None:
    """Trust levels and selection keys of a normalized ``param.json``, for every job and system.

    Raises
    ------
    ParamError
        naming the key (and the job and system), the value and the fix.
    """
    adapt = bool(param["model_devi_adapt_trust_lo"])
    short = dict(zip(("f_lo", "f_hi", "v_lo", "v_hi"), TRUST_KEYS))
    for key in TRUST_KEYS:
        _check_shape(key, param[key], n_systems, "")
    if all(not isinstance(param[k], (list, dict)) for k in TRUST_KEYS):
        _check_levels(TrustLevels(*(param[k] for k in TRUST_KEYS)), short, "", adapt)
    if adapt:
        for key in ("model_devi_numb_candi_f", "model_devi_numb_candi_v"):
            require(param[key] >= 0, f"{key} = {param[key]}: a number of frames >= 0")
        for key in ("model_devi_perc_candi_f", "model_devi_perc_candi_v"):
            require(0 <= param[key] <= 100, f"{key} = {param[key]}: a percentage in [0, 100]")
        require(any(param[k] > 0 for k in ("model_devi_numb_candi_f", "model_devi_numb_candi_v",
                                              "model_devi_perc_candi_f", "model_devi_perc_candi_v")),
                "model_devi_adapt_trust_lo = true with model_devi_numb_candi_f/v and model_devi_perc_candi_f/v "
                "all 0: no frame would ever be a candidate; set model_devi_numb_candi_f (DP-GEN's default 10)")
    if param["model_devi_f_avg_relative"]:
        require(not param.get("use_relative"), "model_devi_f_avg_relative = true with use_relative = true: the "
                "force deviation would be divided twice (DP-GEN: not to be used together); keep one")
    for j, job in enumerate(param["model_devi_jobs"]):
        where = f"model_devi_jobs[{j}]"
        for key in TRUST_KEYS:
            if job.get(key) is not None:
                _check_shape(key, job[key], n_systems, f"{where}.")
        values = job_trust(param, job)
        names = {s: (f"{where}.{k}" if job.get(k) is not None else k) for s, k in short.items()}
        for sys_idx in sorted({i for i in job["sys_idx"] if isinstance(i, int) and 0 <= i < n_systems}):
            resolved = []
            for s, key in short.items():
                value = values[key]
                try:
                    resolved.append(None if value is None else level_of(value, sys_idx))
                except (KeyError, IndexError):
                    raise_missing(names[s], value, sys_idx, where)
            _check_levels(TrustLevels(*resolved), names, f"{where}, system {sys_idx}: ", adapt)


def raise_missing(name: str, value, sys_idx: int, where: str) -> None:
    """A per-system dict without the level of an explored system."""
    require(False, f"{name} = {value}: no level for system {sys_idx}, which {where} explores; add "
            f"\"{sys_idx}\": <level> (or give a single number)")
