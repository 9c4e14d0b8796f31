"""DP-GEN 0.14 users' files (its own examples, vendored in tests/dpgen_examples) run as they are.

Each ``param.json`` of DP-GEN's ``examples/run`` validates, except for the data and
pseudopotential files the examples point to (reported as missing files), or is refused only
for something dpgen_lite does not run, with a message naming the key, the value and why.
Each machine file in DP-GEN's api_version 1.0 layout validates.
"""

import json
import re
from pathlib import Path

import pytest

from dpgen_lite.cli import main
from dpgen_lite.params import ParamError, load_file
from dpgen_lite.schema import validate_machine, validate_run

EXAMPLES = Path(__file__).parent / "dpgen_examples"
RUN_FILES = sorted(p for p in (EXAMPLES / "run").rglob("*.json") if "machine" not in p.name)
MACHINE_FILES = sorted([*(EXAMPLES / "run").rglob("machine*.json"), *(EXAMPLES / "machine").rglob("*.json")])

#: what each refused example is refused for (every other message must be a missing file)
REFUSED = {
    "dp-calypso-vasp/param.json": ["model_devi_engine = 'calypso': refused"],
    "dp2.x-gromacs-gaussian/param.json": ["model_devi_engine = 'gromacs': refused"],
    "dprc/generator.json": ["model_devi_engine = 'amber': refused", "fp_style = 'amber/diff': refused"],
    "dp-lammps-enhance_sampling/param.json": ["model_devi_plumed = True: refused",
                                              "model_devi_jobs[0].template.plm = 'lmp/input.plumed': refused"],
    "dp2.x-lammps-gaussian/param_C4H16N4_deepmd-kit-2.0.1.json": ["use_clusters = True: refused"],
    "dp2.x_lammps_gaussian/dodecane/dodecane.json": ["use_clusters = True: refused"],
    "dp2.x-lammps-vasp-et/param_elet.json": ["use_ele_temp = 2: refused"],
    # DP-GEN 0.14 refuses it too: one POTCAR for two elements (its make_fp asserts one per element)
    "ch4/param.json": ["fp_pp_files = ['POTCAR']: 1 file(s) for 2 type_map elements"],
}
REFUSED_MACHINES = {
    # DP-GEN's layout before api_version 1.0
    "run/ch4/machine.json": ["only DP-GEN's api_version 1.0 layout is read"],
    # dpdispatcher's own schema has no resources.local_root
    "run/dp-calypso-vasp/machine.json": ["train.resources", "local_root"],
}
MISSING = re.compile(r"missing file|no such file")


def problems(err: ParamError) -> list[str]:
    return [line[4:] for line in str(err).splitlines() if line.startswith("  - ")]


def test_every_dpgen_example_is_here():
    assert len(RUN_FILES) == 20 and len(MACHINE_FILES) == 13


@pytest.mark.parametrize("path", RUN_FILES, ids=lambda p: str(p.relative_to(EXAMPLES / "run")))
def test_dpgen_param_file(path):
    name = str(path.relative_to(EXAMPLES / "run"))
    expected = REFUSED.get(name, [])
    try:
        validate_run(load_file(path), path.parent, name)
        messages = []
    except ParamError as err:
        messages = problems(err)
        assert messages, str(err)
    unexplained = [m for m in messages if not MISSING.search(m) and not any(e in m for e in expected)]
    assert not unexplained, unexplained
    for fragment in expected:
        assert any(fragment in m for m in messages), (fragment, messages)
    for m in messages:
        if "refused" in m:
            assert re.match(r"[\w\[\].]+ = .+: refused: .+", m), m  # key, value, why


@pytest.mark.parametrize("path", MACHINE_FILES, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_dpgen_machine_file(path):
    name = str(path.relative_to(EXAMPLES))
    if name in REFUSED_MACHINES:
        with pytest.raises(ParamError) as err:
            validate_machine(load_file(path), name)
        for fragment in REFUSED_MACHINES[name]:
            assert fragment in str(err.value)
        return
    mdata, _ = validate_machine(load_file(path), name)
    for stage in ("train", "model_devi", "fp"):
        if stage in mdata and mdata[stage] is not None:
            assert isinstance(mdata[stage], dict) and "machine" in mdata[stage]
            assert not any(k.startswith("_") for k in json.dumps(mdata[stage]).split('"')[1::2]
                           if k.startswith("_comment"))


def test_machine_stage_as_list_takes_first(tmp_path):
    stage = {"command": "dp", "machine": {"batch_type": "Shell", "context_type": "LazyLocalContext",
                                          "local_root": ".", "_comment": "mine"},
             "resources": {"number_node": 1, "cpu_per_node": 2, "group_size": 1, "_comment": "x"}}
    other = json.loads(json.dumps(stage))
    other["command"] = "not me"
    mdata, notes = validate_machine({"train": [stage, other], "_comment": "top"})
    assert mdata["train"]["command"] == "dp"
    assert "_comment" not in mdata["train"]["machine"] and "_comment" not in mdata["train"]["resources"]
    assert any("first one is used" in n for n in notes)


def test_ignored_keys_are_logged_and_refused_keys_named(cu_run):
    folder, param = cu_run
    base = json.loads(json.dumps(param))
    param.update(detailed_report_make_fp=True, model_devi_merge_traj=True, use_relative=False,
                 fp_pp_path="/nowhere")
    mdata_notes = validate_run(param, folder)[1]
    assert any(n.startswith("detailed_report_make_fp: ignored") for n in mdata_notes)
    assert any(n.startswith("model_devi_merge_traj: ignored") for n in mdata_notes)
    assert any("fp_pp_path: ignored (not a key of fp_style 'ase')" in n for n in mdata_notes)
    param.update(use_clusters=True, mlp_engine="nequip", model_devi_engine="gromacs")
    with pytest.raises(ParamError) as err:
        validate_run(param, folder)
    text = str(err.value)
    assert "use_clusters = True: refused" in text and "mlp_engine = 'nequip': refused" in text
    assert "model_devi_engine = 'gromacs': refused" in text
    # a key unknown to DP-GEN too is still a typo with a suggestion
    base["fp_task_maxx"] = 3
    with pytest.raises(ParamError, match="fp_task_maxx.*fp_task_max"):
        validate_run(base, folder)


def test_dpgen_check_lists_every_problem(cu_run, capsys):
    from tests.conftest import write_param
    folder, param = cu_run
    write_param(folder, param)
    assert main(["check", str(folder / "param.json"), "--work-dir", str(folder)]) == 0
    assert "valid for dpgen run" in capsys.readouterr().out
    param.update(numb_models=1, init_data_sys=["gone"], model_devi_f_trust_lo=0.5)
    write_param(folder, param)
    write_param(folder, {"train": {"machine": {"batch_type": "Shell", "context_type": "LocalContext",
                                              "local_root": ".", "remote_root": "/tmp/x"},
                                   "resources": {"number_node": 1, "cpu_per_nod": 4}}}, "machine.json")
    before = sorted(p.name for p in folder.iterdir())
    code = main(["check", str(folder / "param.json"), str(folder / "machine.json"), "--work-dir", str(folder)])
    err = capsys.readouterr().err
    assert code == 2
    for fragment in ("numb_models = 1", "missing file", "model_devi_f_trust_lo = 0.5", "cpu_per_nod"):
        assert fragment in err, (fragment, err)
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written


def test_dpgen_init_file_checks_from_the_command_line(tmp_path, capsys):
    """DP-GEN's own init_bulk example, unchanged (no fp_style: its program is init_fp_style, VASP),
    with the structure, POTCAR and INCARs it names written beside it."""
    from tests.test_init_bulk_dpgen import al_setup
    (tmp_path / "al.json").write_text(json.dumps(al_setup(tmp_path)))
    assert main(["check", str(tmp_path / "al.json"), "--work-dir", str(tmp_path)]) == 0
    assert "valid for dpgen init_bulk" in capsys.readouterr().out
    (tmp_path / "INCAR.md").unlink()
    assert main(["check", str(tmp_path / "al.json"), "--work-dir", str(tmp_path)]) == 2
    assert "md_incar" in capsys.readouterr().err
