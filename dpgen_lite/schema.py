"""Schemas of ``param.json`` and ``machine.json`` (dargs), and the cross-key checks.

Everything is checked before any work starts.  Every error is a :class:`ParamError`
whose message names the key, the value found and what is allowed.
"""

from __future__ import annotations

import glob
import json
from pathlib import Path

import dpdata
from dargs import Argument
from dargs.dargs import ArgumentError

from .explore.lammps import ENSEMBLES
from .train.deepmd import BACKENDS


class ParamError(ValueError):
    """Invalid input file: the message names the key, the value and the fix."""


def _a(name, dtype, doc, **kw):
    return Argument(name, dtype, optional="default" in kw or kw.pop("optional", False), doc=doc, **kw)


def model_devi_job_args() -> list[Argument]:
    """Keys of one ``model_devi_jobs`` entry."""
    return [
        _a("sys_idx", list, "indices into sys_configs explored by this job"),
        _a("temps", list, "temperatures, K"),
        _a("press", list, "pressures, bar (npt ensembles)", default=None),
        _a("trj_freq", int, "steps between dumped frames / model deviation rows"),
        _a("nsteps", int, "MD steps per task"),
        _a("ensemble", str, f"one of {', '.join(ENSEMBLES)}"),
        _a("neidelay", int, "LAMMPS neighbour-list delay", default=None),
        _a("taut", float, "thermostat damping, ps", default=0.1),
        _a("taup", float, "barostat damping, ps", default=0.5),
    ]


def fp_args() -> list[Argument]:
    """Keys shared by every fp style (style-specific ones are checked by the style)."""
    from .label.bad_box import parse_skip_bad_box  # raises ValueError naming the key and the fix
    return [
        _a("fp_style", str, "labelling program: ase, cp2k, vasp, abacus, pwscf"),
        _a("fp_params", dict, "parameters of the fp style (pwscf: ecut, ediff, smearing, sigma, kspacing)",
           default=None),
        _a("user_fp_params", dict, "fp input given verbatim (cp2k sections, abacus INPUT keys, "
           "pwscf namelists + kspacing)", default=None),
        _a("external_input_path", str, "fp input template (cp2k)", default=None),
        _a("ratio_failed", float, "largest tolerated share of failed fp tasks", default=0.2),
        _a("fp_pp_path", str, "folder of the pseudopotential / orbital files (vasp, abacus, pwscf)", default=None),
        _a("fp_pp_files", [list, dict], "pseudopotential files in type_map order, or {element: file}",
           default=None),
        _a("fp_orb_files", [list, dict], "abacus LCAO orbital files in type_map order, or {element: file}",
           default=None),
        _a("fp_dpks_descriptor", str, "abacus DeePKS descriptor file (in fp_pp_path)", default=None),
        _a("fp_incar", str, "vasp INCAR / abacus INPUT file", default=None),
        _a("fp_aniso_kspacing", list, "vasp: three k-spacings, 1/Å (2π included); writes KPOINTS", default=None),
        _a("fp_kpt_file", str, "abacus KPT file", default=None),
        _a("k_points", list, "abacus Monkhorst-Pack mesh and shift, e.g. [4, 4, 4, 0, 0, 0]", default=None),
        _a("cvasp", bool, "DP-GEN's Custodian switch: accepted, not used", default=False),
        _a("fp_skip_bad_box", str, "skip candidates with a degenerate box, e.g. 'length_ratio:5;height_ratio:5'",
           default=None, extra_check=lambda v: v is None or bool(parse_skip_bad_box(v))),
    ]


def final_training_args() -> Argument:
    """Keys of the ``final_training`` section: what happens once the loop has ended."""
    special = [
        _a("data", str, "a labelled deepmd/npy folder", default=None),
        _a("structures", list, "glob patterns of structures (sys_format) to label with the fp style", default=None),
        _a("generator", dict, "structures made by a generator: {type: elastic, structure, norm_deform, "
           "shear_deform}", default=None),
        _a("weight", float, "sampling weight of a frame of this set relative to a regular frame", default=3.0),
    ]
    validation = [
        _a("holdout_ratio", float, "share of every iteration's labels kept out of all training", default=0.0),
        _a("data", list, "deepmd/npy folders of a user-given validation set", default=[]),
    ]
    fields = [
        _a("numb_models", int, "final models (distinct seeds)", default=1),
        _a("numb_steps", int, "training steps of the long training"),
        _a("learning_rate", dict, "overrides of default_training_param's learning_rate", default=None),
        _a("loss", dict, "overrides of the loss prefactors; default turns the virial on "
           "(start_pref_v 0.02, limit_pref_v 1)", default=None),
        _a("compress", bool, "dp compress the final models", default=True),
        _a("special_sets", list, "extra weighted data sets (specialisation)", sub_fields=special, repeat=True,
           default=[]),
        _a("special_numb_steps", int, "training steps of the specialisation", default=2000),
        _a("special_start_lr", float, "start_lr of the specialisation (default: long training's / 10)",
           default=None),
        _a("init_from_loop", bool, "start the long training from the loop's last models", default=False),
        _a("validation", dict, "validation set of the model test", sub_fields=validation, default={}),
    ]
    return _a("final_training", dict, "long training, compression, specialisation, model test", sub_fields=fields,
              default=None)


def run_args() -> Argument:
    """Schema of ``param.json`` for ``dpgen run``."""
    fields = [
        _a("type_map", list, "element of each atom type"),
        _a("mass_map", [list, str], "atomic masses in type_map order, g/mol; 'auto' takes ASE's", default="auto"),
        _a("init_data_prefix", str, "folder prepended to init_data_sys", default=""),
        _a("init_data_sys", list, "initial training data, deepmd/npy folders"),
        _a("sys_configs_prefix", str, "folder prepended to sys_configs", default=""),
        _a("sys_configs", list, "per system, a list of glob patterns of starting configurations"),
        _a("sys_format", str, "dpdata format of the configurations", default="vasp/poscar"),
        _a("numb_models", int, "models in the ensemble (>= 2)", default=4),
        _a("default_training_param", dict, "deepmd-kit input (model, learning_rate, loss, training)"),
        _a("train_backend", str, f"one of {', '.join(BACKENDS)}", default="tensorflow"),
        _a("training_init_model", bool, "start each iteration's models from the previous ones", default=False),
        _a("training_reuse_iter", int, "from this iteration on, init from the previous models", default=None),
        _a("training_reuse_numb_steps", int, "numb_steps when reusing", default=None),
        _a("training_reuse_start_lr", float, "start_lr when reusing", default=None),
        _a("training_reuse_old_ratio", float, "share of init data in a batch when reusing", default=None),
        _a("model_devi_jobs", list, "one exploration job per iteration", sub_fields=model_devi_job_args(), repeat=True),
        _a("model_devi_dt", float, "MD time step, ps", default=0.001),
        _a("model_devi_skip", int, "frames of each task not considered (equilibration), in steps", default=0),
        _a("model_devi_f_trust_lo", float, "force deviation below which a frame is accurate, eV/Å"),
        _a("model_devi_f_trust_hi", float, "force deviation from which a frame is failed, eV/Å"),
        _a("model_devi_v_trust_lo", float, "virial deviation below which a frame is accurate, eV", default=None),
        _a("model_devi_v_trust_hi", float, "virial deviation from which a frame is failed, eV", default=None),
        _a("model_devi_clean_traj", bool, "delete trajectories once the candidates are labelled", default=False),
        _a("fp_task_max", int, "most fp tasks per system and iteration"),
        _a("fp_task_min", int, "fewer candidates than this: no fp task", default=0),
        _a("fp_accurate_threshold", float, "accurate ratio above which nothing is labelled", default=1.0),
        _a("fp_accurate_soft_threshold", float, "accurate ratio from which fp_task_max scales down", default=1.0),
        _a("convergence_accurate_ratio", float,
           "stop once an iteration's accurate ratio (all systems) reaches this; null: run every job",
           default=None),
        _a("random_seed", int, "seed of the candidate pick", default=2020),
        final_training_args(),
        *fp_args(),
    ]
    return Argument("param", dict, sub_fields=fields)


def init_bulk_args() -> Argument:
    """Schema of ``param.json`` for ``dpgen init_bulk``."""
    fields = [
        _a("type_map", list, "element of each atom type"),
        _a("elements", list, "elements of the lattice sites (cell_type route)", default=None),
        _a("cell_type", str, "fcc, bcc, hcp, sc or diamond", default=None),
        _a("latt", float, "lattice constant, Å", default=None),
        _a("from_poscar", bool, "start from from_poscar_path instead of cell_type", default=False),
        _a("from_poscar_path", str, "POSCAR of the unit cell", default=None),
        _a("super_cell", list, "supercell repetitions, 3 integers"),
        _a("scale", list, "isotropic length scales applied to the supercell", default=[1.0]),
        _a("pert_numb", int, "perturbed copies of each scaled cell"),
        _a("pert_box", float, "largest relative box perturbation", default=0.03),
        _a("pert_atom", float, "largest atom displacement, Å", default=0.01),
        _a("random_seed", int, "seed of the perturbations", default=2020),
        *fp_args(),
    ]
    return Argument("param", dict, sub_fields=fields)


def machine_args() -> Argument:
    """Schema of ``machine.json`` (DP-GEN's api_version 1.0 layout)."""
    stage = [
        _a("command", str, "program of the stage (dp, lmp, or the full fp command)", default=None),
        _a("machine", dict, "dpdispatcher machine"),
        _a("resources", dict, "dpdispatcher resources"),
        _a("user_forward_files", list, "extra files sent with each task", default=[]),
        _a("user_backward_files", list, "extra files fetched from each task", default=[]),
        _a("check_interval", [int, float], "seconds between job status checks", default=30),
    ]
    fields = [
        _a("api_version", str, "machine file format, '1.0'", default="1.0"),
        _a("deepmd_version", str, "ignored, accepted for DP-GEN files", default=None),
        *(_a(s, dict, f"where the {s} stage runs", default=None, sub_fields=stage) for s in ("train", "model_devi", "fp")),
    ]
    return Argument("machine", dict, sub_fields=fields)


def load_file(path: Path) -> dict:
    """Read a JSON or YAML file into a dict.

    Raises
    ------
    ParamError
        if the file is missing or not valid JSON/YAML.
    """
    path = Path(path)
    if not path.is_file():
        raise ParamError(f"{path}: no such file")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml
            return yaml.safe_load(text)
        return json.loads(text)
    except Exception as err:  # json.JSONDecodeError, yaml.YAMLError
        raise ParamError(f"{path}: not valid {path.suffix[1:].upper() or 'JSON'}: {err}") from err


def normalize(arg: Argument, data: dict, name: str) -> dict:
    """Check ``data`` strictly against ``arg`` (unknown keys are errors) and fill defaults.

    Raises
    ------
    ParamError
        naming the key path, the value and the allowed type or the closest known key.
    """
    try:
        data = arg.normalize_value(data, trim_pattern="_*")
        data = arg.normalize_value(data)  # fills the keys of sub-sections that took a default
        arg.check_value(data, strict=True)
    except (ArgumentError, KeyError, TypeError, ValueError) as err:
        raise ParamError(f"{name}: {err}") from None
    return data


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ParamError(message)


def check_trust(param: dict) -> None:
    """Trust levels: lo < hi, both or neither virial level."""
    lo, hi = param["model_devi_f_trust_lo"], param["model_devi_f_trust_hi"]
    _require(0 <= lo < hi, f"model_devi_f_trust_lo = {lo}, model_devi_f_trust_hi = {hi}: "
             "need 0 <= lo < hi (eV/Å), e.g. 0.05 and 0.15")
    vlo, vhi = param["model_devi_v_trust_lo"], param["model_devi_v_trust_hi"]
    _require((vlo is None) == (vhi is None), "model_devi_v_trust_lo and model_devi_v_trust_hi: "
             "give both or neither")
    if vlo is not None:
        _require(0 <= vlo < vhi, f"model_devi_v_trust_lo = {vlo}, model_devi_v_trust_hi = {vhi}: "
                 "need 0 <= lo < hi (eV)")


def resolve_configs(param: dict, base_dir: Path) -> list[list[Path]]:
    """Expand ``sys_configs`` (a list of lists of glob patterns) into sorted files per system.

    Raises
    ------
    ParamError
        for a 1-D list, or a pattern that matches no file.
    """
    out = []
    prefix = base_dir / param["sys_configs_prefix"]
    for i, patterns in enumerate(param["sys_configs"]):
        _require(isinstance(patterns, list), f"sys_configs[{i}] = {patterns!r}: each system is a list "
                 f"of glob patterns; write [[{patterns!r}]] instead of [{patterns!r}]")
        files = sorted({Path(f) for p in patterns for f in glob.glob(str(prefix / p))})
        _require(bool(files), f"sys_configs[{i}] = {patterns!r}: no file matches under {prefix}")
        out.append(files)
    return out


def _check_elements(names, counts, type_map, where: str) -> None:
    missing = [n for n, c in zip(names, counts) if c > 0 and n not in type_map]
    _require(not missing, f"{where}: element(s) {missing} are not in type_map = {type_map}; "
             "add them to type_map (and mass_map)")


def check_run_param(param: dict, base_dir: Path) -> None:
    """Cross-key checks of a normalized ``param.json`` (files exist, indices in range, ...).

    Raises
    ------
    ParamError
        for the first problem found.
    """
    type_map = param["type_map"]
    mass_map = param["mass_map"]
    _require(mass_map == "auto" or len(mass_map) == len(type_map),
             f"mass_map = {mass_map}: needs one mass per type_map entry ({len(type_map)}), or 'auto'")
    _require(param["numb_models"] >= 2, f"numb_models = {param['numb_models']}: need >= 2 for a model deviation")
    _require(param["train_backend"] in BACKENDS,
             f"train_backend = {param['train_backend']!r}: allowed {', '.join(BACKENDS)}")
    check_trust(param)
    for key in ("fp_accurate_threshold", "fp_accurate_soft_threshold", "ratio_failed"):
        _require(0 <= param[key] <= 1, f"{key} = {param[key]}: must lie in [0, 1]")
    _require(param["fp_accurate_soft_threshold"] <= param["fp_accurate_threshold"],
             f"fp_accurate_soft_threshold = {param['fp_accurate_soft_threshold']} exceeds "
             f"fp_accurate_threshold = {param['fp_accurate_threshold']}")
    _require(0 <= param["fp_task_min"] <= param["fp_task_max"],
             f"fp_task_min = {param['fp_task_min']}, fp_task_max = {param['fp_task_max']}: need 0 <= min <= max")
    conv = param["convergence_accurate_ratio"]
    _require(conv is None or 0 < conv <= 1, f"convergence_accurate_ratio = {conv}: must lie in (0, 1] or be null")
    check_fp_style(param, base_dir)

    for i, sys_path in enumerate(param["init_data_sys"]):
        path = base_dir / param["init_data_prefix"] / sys_path
        _require((path / "type.raw").is_file(), f"init_data_sys[{i}] = {sys_path!r}: {path} is not a "
                 "deepmd/npy folder (no type.raw); run `dpgen init_bulk` or fix init_data_prefix")
        data = dpdata.LabeledSystem(str(path), fmt="deepmd/npy")
        _check_elements(data["atom_names"], data["atom_numbs"], type_map, f"init_data_sys[{i}]")

    if param["final_training"] is not None:
        from .train.final import check_final
        for key in ("holdout_ratio",):
            value = param["final_training"]["validation"][key]
            _require(0 <= value < 1, f"final_training.validation.{key} = {value}: must lie in [0, 1)")
        check_final(param["final_training"], param, base_dir)
        n_final = param["final_training"]["numb_models"]
        _require(not param["final_training"]["init_from_loop"] or n_final <= param["numb_models"],
                 f"final_training.numb_models = {n_final}: init_from_loop needs at most numb_models = "
                 f"{param['numb_models']} (one loop model per final model)")

    configs = resolve_configs(param, base_dir)
    for i, files in enumerate(configs):
        for f in files:
            conf = dpdata.System(str(f), fmt=param["sys_format"])
            _check_elements(conf["atom_names"], conf["atom_numbs"], type_map, f"sys_configs[{i}] file {f}")

    for j, job in enumerate(param["model_devi_jobs"]):
        where = f"model_devi_jobs[{j}]"
        bad = [i for i in job["sys_idx"] if not (isinstance(i, int) and 0 <= i < len(configs))]
        _require(not bad, f"{where}.sys_idx = {job['sys_idx']}: {bad} out of range; sys_configs has "
                 f"{len(configs)} system(s), indices 0..{len(configs) - 1}")
        _require(job["ensemble"] in ENSEMBLES,
                 f"{where}.ensemble = {job['ensemble']!r}: allowed {', '.join(ENSEMBLES)}")
        _require(not job["ensemble"].startswith("npt") or bool(job["press"]),
                 f"{where}.press = {job['press']}: ensemble {job['ensemble']!r} needs a list of pressures (bar)")
        _require(job["trj_freq"] > 0 and job["nsteps"] >= job["trj_freq"],
                 f"{where}: trj_freq = {job['trj_freq']}, nsteps = {job['nsteps']}: need 0 < trj_freq <= nsteps")
        _require(bool(job["temps"]), f"{where}.temps = {job['temps']}: give at least one temperature (K)")


def check_fp_style(param: dict, base_dir: Path) -> None:
    """The fp style exists and accepts its keys (pseudopotentials, templates, calculator, ...).

    Raises
    ------
    ParamError
        with the style's message.
    """
    from .label.base import get_style
    try:
        get_style(param["fp_style"])(param, base_dir).check()
    except (KeyError, ValueError) as err:
        raise ParamError(str(err.args[0])) from None


def check_machine(mdata: dict) -> None:
    """Check each stage's ``machine`` and ``resources`` against dpdispatcher's own schemas.

    Raises
    ------
    ParamError
        naming the stage and the offending key; for an ``api_version`` other than 1.x
        (DP-GEN's old layout, with lists of machines, is not read).
    """
    from .dispatch import _import_dpdispatcher
    version = str(mdata.get("api_version", "1.0"))
    if not version.split(".")[0] == "1":
        raise ParamError(f"machine file, api_version = {version!r}: only DP-GEN's api_version 1.0 layout is read "
                         "(one dict per stage with command, machine, resources); see machines/README.md")
    dpd = _import_dpdispatcher()
    for stage in ("train", "model_devi", "fp"):
        conf = mdata.get(stage)
        if conf is None:
            continue
        resources = {"batch_type": conf["machine"].get("batch_type"), **conf["resources"]}
        for key, cls, value in (("machine", dpd.Machine, conf["machine"]), ("resources", dpd.Resources, resources)):
            try:
                cls.arginfo().check_value(cls.arginfo().normalize_value(value), strict=True)
            except (ArgumentError, KeyError, TypeError, ValueError) as err:
                raise ParamError(f"machine file, {stage}.{key}: {err}") from None
