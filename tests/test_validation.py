"""Bad input fails before any work, naming the key, the value and the fix."""

import os

import pytest

from dpgen_lite.cli import main
from tests.conftest import write_param


def run_cli(folder, param, capsys):
    write_param(folder, param)
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        code = main(["run", "param.json"])
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err
    assert not list(folder.glob("iter.*")) and not (folder / "record.dpgen").exists()
    return code, err


def test_valid_param_passes(cu_run):
    from dpgen_lite.cli import load_run_param
    folder, param = cu_run
    write_param(folder, param)
    assert load_run_param(str(folder / "param.json"), folder)["numb_models"] == 4


@pytest.mark.parametrize("mutate, expected", [
    (lambda p: p.update(numb_model=4), ["numb_model", "numb_models"]),
    (lambda p: p["model_devi_jobs"][0].update(sys_idxx=[0]), ["sys_idxx", "sys_idx"]),
    (lambda p: p["model_devi_jobs"][1].update(sys_idx=[0, 3]), ["model_devi_jobs[1].sys_idx", "[3]", "0..0"]),
    (lambda p: p.update(type_map=["Al"], mass_map="auto"), ["init_data_sys[0]", "['Cu']", "type_map"]),
    (lambda p: p["sys_configs"].append(["al/POSCAR"]), ["sys_configs[1]", "['Al']", "type_map = ['Cu']"]),
    (lambda p: p.update(init_data_sys=["missing"]), ["init_data_sys[0]", "missing", "init_bulk"]),
    (lambda p: p.update(sys_configs=[["nothing*/POSCAR"]]), ["sys_configs[0]", "no file matches"]),
    (lambda p: p.update(sys_configs=["00[01]/POSCAR"]), ["sys_configs[0]", "[['00[01]/POSCAR']]"]),
    (lambda p: p.update(model_devi_f_trust_lo=0.3, model_devi_f_trust_hi=0.2), ["model_devi_f_trust_lo = 0.3", "lo < hi"]),
    (lambda p: p.update(model_devi_v_trust_lo=0.1), ["model_devi_v_trust_hi", "both or neither"]),
    (lambda p: p["model_devi_jobs"][0].update(ensemble="nvp"), ["ensemble = 'nvp'", "npt"]),
    (lambda p: p["model_devi_jobs"][1].pop("press"), ["press", "pressures"]),
    (lambda p: p.update(fp_style="vasq"), ["fp_style = 'vasq'", "ase"]),
    (lambda p: p.update(fp_params={"calculator": "ase.calculators.nope.NoCalc"}), ["fp_params.calculator", "nope"]),
    (lambda p: p.update(mass_map=[1.0, 2.0]), ["mass_map", "one mass per type_map"]),
    (lambda p: p.update(numb_models="four"), ["numb_models"]),
    (lambda p: p.update(final_training={"numb_steps": 10, "special_sets": [{"weight": 1.0}],
                                        "validation": {"holdout_ratio": 0.2}}), ["special_sets[0]", "exactly one"]),
    (lambda p: p.update(final_training={"numb_steps": 10, "special_sets": [{"data": "init", "weight": 0.0}],
                                        "validation": {"holdout_ratio": 0.2}}), ["weight = 0.0", "> 0"]),
    (lambda p: p.update(final_training={"numb_steps": 10}), ["final_training.validation", "holdout_ratio > 0"]),
    (lambda p: p.update(final_training={"numb_steps": 10, "validation": {"holdout_ratio": 1.0}}),
     ["holdout_ratio = 1.0", "[0, 1)"]),
    (lambda p: p.update(final_training={"numb_steps": 10, "numb_models": 9, "init_from_loop": True,
                                        "validation": {"holdout_ratio": 0.2}}), ["numb_models = 9", "init_from_loop"]),
    (lambda p: p.update(final_training={"numb_steps": 10, "validation": {"holdout_ratio": 0.2},
                                        "special_sets": [{"generator": {"type": "phonon", "structure": "confs/000/POSCAR"},
                                                          "weight": 2.0}]}), ["generator type = 'phonon'", "'gamma'"]),
    (lambda p: p.update(final_training={"numb_steps": 10, "validation": {"holdout_ratio": 0.2},
                                        "special_sets": [{"generator": {"type": "vacancy", "structure": "confs/000/POSCAR",
                                                                        "supercel": [2, 2, 2]}}]}), ["supercel"]),
])
def test_bad_param_fails_before_work(cu_run, capsys, mutate, expected):
    folder, param = cu_run
    mutate(param)
    code, err = run_cli(folder, param, capsys)
    assert code == 2
    for fragment in expected:
        assert fragment in err, (fragment, err)


def test_bad_machine_file(cu_run, capsys):
    folder, param = cu_run
    write_param(folder, param)
    write_param(folder, {"train": {"command": "dp", "machine": {"batch_type": "Shell", "context_type": "Local",
                                   "local_root": ".", "remote_root": "/tmp/x"},
                                   "resources": {"number_node": 1, "cpu_per_nod": 4}}}, "machine.json")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        assert main(["run", "param.json", "machine.json"]) == 2
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err
    assert "train.resources" in err and "cpu_per_nod" in err


def test_yaml_param(cu_run):
    import yaml
    from dpgen_lite.cli import load_run_param
    folder, param = cu_run
    (folder / "param.yaml").write_text(yaml.safe_dump(param))
    assert load_run_param(str(folder / "param.yaml"), folder)["fp_style"] == "ase"
