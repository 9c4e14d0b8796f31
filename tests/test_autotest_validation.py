"""Bad autotest input fails before any task folder is written, with a message naming the problem."""

import pytest

from dpgen_lite.autotest.schema import load_param
from dpgen_lite.cli import main
from dpgen_lite.params import ParamError

from .conftest import write_param
from .test_autotest_properties import EMT_INTER, write_conf

EAM = {"type": "eam_alloy", "model": "Cu_mishin1.eam.alloy", "type_map": ["Cu"]}


def base(**kw):
    return {"structures": ["confs/std-fcc"], "interaction": EMT_INTER,
            "properties": [{"type": "eos"}], **kw}


@pytest.mark.parametrize("change, message", [
    ({"properties": [{"type": "elasticity"}]}, "unknown property type 'elasticity'"),
    ({"properties": [{"type": "surface", "miller": [[1, 1]]}]}, "miller[0] = [1, 1]: need a list of 3 integers"),
    ({"properties": [{"type": "gamma", "plane_miller": [1, 1, 1, 0], "slip_direction": [1, 1, -2]}]},
     "plane_miller = [1, 1, 1, 0]: need a list of 3 integers"),
    ({"properties": [{"type": "gamma", "plane_miller": [1, 1, 1], "slip_direction": [1, 0, 0]}]},
     "is not in the plane"),
    ({"interaction": {**EAM, "model": "missing.eam.alloy"}}, "missing.eam.alloy does not exist"),
    ({"interaction": {**EAM, "type_map": ["Al"]}}, "element(s) ['Cu'] absent from interaction"),
    ({"interaction": {"type": "tersoff", "type_map": ["Cu"]}}, "unknown interaction type 'tersoff'"),
    ({"interaction": {**EMT_INTER, "calculator": "ase.calculators.nope.Nope"}}, "cannot be imported"),
    ({"interaction": {"type": "fp", "fp_style": "ase", "type_map": ["Cu"],
                      "fp_params": {"calculator": "ase.calculators.emt.EMT"}}}, "computes single points only"),
    ({"properties": [{"type": "eos", "vol_step": 0.2}]}, "need vol_start > 0 and at least 5 volumes"),
    ({"properties": [{"type": "eos", "volstart": 0.9}]}, "volstart"),
    ({"properties": [{"type": "vacancy", "cal_setting": {"relax_shape": True}}]}, "relax_shape without relax_vol"),
    ({"structures": ["confs/none-*"]}, "matches no folder"),
    ({"properties": [{"type": "eos"}, {"type": "eos"}]}, "distinct 'suffix'"),
])
def test_bad_input_fails_up_front(tmp_path, capsys, change, message):
    write_conf(tmp_path)
    write_param(tmp_path, base(**change))
    with pytest.raises(ParamError) as err:
        from dpgen_lite.params import load_file
        load_param(load_file(tmp_path / "param.json"), tmp_path)
    assert message in str(err.value)
    # the command line: exit code 2, the message, nothing written
    assert main(["autotest", "all", str(tmp_path / "param.json"), "--work-dir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "confs" / "std-fcc").iterdir()) == ["POSCAR"]


def test_properties_before_relaxation(tmp_path, capsys):
    write_conf(tmp_path)
    write_param(tmp_path, base())
    assert main(["autotest", "make", str(tmp_path / "param.json"), "--work-dir", str(tmp_path),
                 "--step", "properties"]) == 2
    assert "relaxation first" in capsys.readouterr().err
