"""Cross-checks at start (dpgen_lite.crosscheck): each bad input stops `dpgen check` / `dpgen run`
before any work, with the key, the value and the fix."""

import logging
import subprocess
import sys

import ase.build
import ase.io
import dpdata
import numpy as np
import pytest
from ase.neighborlist import neighbor_list

from dpgen_lite.crosscheck import check_mass_map
from dpgen_lite.params import ParamError, load_file
from dpgen_lite.schema import validate_run
from tests.conftest import write_param

DESCRIPTOR = "default_training_param.model.descriptor"


def problems(folder, param) -> list[str]:
    """The messages of validate_run on ``param`` written in ``folder`` (none if it is valid)."""
    path = write_param(folder, param)
    try:
        validate_run(load_file(path), folder, "param.json")
    except ParamError as err:
        return [line[4:] for line in str(err).splitlines() if line.startswith("  - ")]
    return []


def dpgen_check(folder, param) -> subprocess.CompletedProcess:
    write_param(folder, param)
    return subprocess.run([sys.executable, "-m", "dpgen_lite.cli", "check", "param.json"], cwd=folder,
                          capture_output=True, text=True, timeout=120)


def most_neighbours(atoms, rcut: float) -> int:
    """Most neighbours of one atom within ``rcut`` (Å), counted by ASE (independent of deepmd-kit)."""
    return int(np.bincount(neighbor_list("i", atoms, rcut), minlength=len(atoms)).max())


def init_frames(folder) -> list:
    """The frames of cu_run's init data, as ASE atoms."""
    return dpdata.LabeledSystem(str(folder / "init"), fmt="deepmd/npy").to("ase/structure")


def test_quickstart_passes(cu_run):
    folder, param = cu_run
    out = dpgen_check(folder, param)
    assert out.returncode == 0, out.stderr
    assert "valid for dpgen run" in out.stdout


# ---------------------------------------------------------------- mass_map

@pytest.fixture
def cu_al(cu_run):
    """cu_run with a second type, Al, and an Al POSCAR among the configurations."""
    folder, param = cu_run
    param.update(type_map=["Cu", "Al"], mass_map="auto", sys_configs=[["00[01]/POSCAR"], ["al/POSCAR"]])
    param["default_training_param"]["model"].update(type_map=["Cu", "Al"])
    param["default_training_param"]["model"]["descriptor"]["sel"] = [60, 60]
    return folder, param


def test_swapped_mass_map_is_named_with_the_fix(cu_al):
    folder, param = cu_al
    param["mass_map"] = [26.98, 63.546]
    found = [m for m in problems(folder, param) if m.startswith("mass_map")]
    assert len(found) == 1, found
    for fragment in ("mass_map = [26.98, 63.546]", "mass of Al", "type_map[0] = 'Cu'", "type_map = ['Cu', 'Al']",
                     "[63.546, 26.982]", '"auto"', "mass_map_check = false"):
        assert fragment in found[0], (fragment, found[0])


def test_intended_masses_pass_with_mass_map_check_false(cu_al):
    folder, param = cu_al
    param.update(mass_map=[26.98, 63.546], mass_map_check=False)
    assert problems(folder, param) == []
    param["mass_map"] = [63.546, 26.98]
    del param["mass_map_check"]
    assert problems(folder, param) == []


def test_isotope_mass_warns_and_integer_masses_pass(caplog):
    with caplog.at_level(logging.WARNING, logger="dpgen_lite"):
        check_mass_map({"type_map": ["H", "O", "OW"], "mass_map": [2.014, 15.999, 18.0], "mass_map_check": True})
    assert [r.getMessage() for r in caplog.records if "mass_map[0] = 2.014" in r.getMessage()], caplog.text
    assert "mass_map[1]" not in caplog.text and "mass_map[2]" not in caplog.text  # OW: no element
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dpgen_lite"):  # DP-GEN's examples round masses
        check_mass_map({"type_map": ["Mg", "Al", "Cu"], "mass_map": [24, 27, 64], "mass_map_check": True})
    assert not caplog.records


def test_non_number_mass_is_named():
    with pytest.raises(ParamError, match=r"mass_map\[1\] = '27' is not a positive number"):
        check_mass_map({"type_map": ["Mg", "Al"], "mass_map": [24.3, "27"], "mass_map_check": True})


# ---------------------------------------------------------------- sel

def test_sel_below_the_densest_init_frame(cu_run):
    folder, param = cu_run
    counts = [most_neighbours(a, 5.0) for a in init_frames(folder)]
    densest = int(np.argmax(counts))
    param["default_training_param"]["model"]["descriptor"]["sel"] = [30]
    found = [m for m in problems(folder, param) if m.startswith(DESCRIPTOR)]
    assert len(found) == 1, found
    assert found[0].startswith(f"{DESCRIPTOR}.sel = [30]: within rcut = 5.0 Å, the densest configurations have "
                               f"[{max(counts)}] neighbours of the types ['Cu'] (Cu: init_data_sys[0] (")
    assert f"frame {densest}); set sel >= [{max(counts)}]" in found[0]
    assert '"auto"' in found[0]
    param["default_training_param"]["model"]["descriptor"]["sel"] = [max(counts)]
    assert problems(folder, param) == []
    param["default_training_param"]["model"]["descriptor"]["sel"] = "auto:1.1"
    assert problems(folder, param) == []


def test_sel_names_a_dense_poscar_per_type(cu_al):
    folder, param = cu_al
    dense = ase.build.bulk("Al", "fcc", a=3.0, cubic=True).repeat(2)
    (folder / "confs" / "dense").mkdir()
    dense.write(folder / "confs" / "dense" / "POSCAR", format="vasp")
    param["sys_configs"][1].append("dense/POSCAR")
    n = most_neighbours(dense, 5.0)
    assert n > 60
    found = [m for m in problems(folder, param) if m.startswith(DESCRIPTOR)]
    assert len(found) == 1, found
    assert f"(Al: sys_configs[1] ({folder / 'confs' / 'dense' / 'POSCAR'})); set sel >= [60, {n}]" in found[0]
    assert "Cu:" not in found[0]  # the Cu entry was enough


def test_total_sel_of_a_hybrid_member(cu_run):
    folder, param = cu_run
    model = param["default_training_param"]["model"]
    plain = dict(model["descriptor"])
    atten = {"type": "se_atten", "sel": 10, "rcut": 4.0, "rcut_smth": 0.5, "neuron": [4], "axis_neuron": 2}
    model["descriptor"] = {"type": "hybrid", "list": [plain, atten]}
    poscar = ase.io.read(folder / "confs" / "000" / "POSCAR")
    n = max(most_neighbours(a, 4.0) for a in [*init_frames(folder), poscar])
    found = [m for m in problems(folder, param) if m.startswith(DESCRIPTOR)]
    assert len(found) == 1, found
    assert found[0].startswith(f"{DESCRIPTOR}.list[1].sel = 10: within rcut = 4.0 Å, the densest configuration (")
    assert f"has {n} neighbours (all types); set sel >= {n}," in found[0]
    atten["sel"] = [n]  # a list: only its sum counts for se_atten
    assert problems(folder, param) == []


def test_per_type_sel_needs_one_entry_per_type(cu_al):
    folder, param = cu_al
    param["default_training_param"]["model"]["descriptor"]["sel"] = [60]
    found = [m for m in problems(folder, param) if m.startswith(DESCRIPTOR)]
    assert found == [f"{DESCRIPTOR}.sel = [60]: 1 entries for the 2 types of type_map = ['Cu', 'Al']; "
                     'give one per type (or "auto")']


# ---------------------------------------------------------------- POSCAR without element names

def test_vasp4_poscar_is_named_with_the_fix(cu_run):
    folder, param = cu_run
    poscar = folder / "confs" / "000" / "POSCAR"
    lines = poscar.read_text().splitlines()
    assert lines[5].split() == ["Cu"]
    poscar.write_text("\n".join(lines[:5] + lines[6:]) + "\n")  # VASP 4: no element line
    out = dpgen_check(folder, param)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    message = [line for line in out.stderr.splitlines() if "VASP 4" in line]
    assert len(message) == 1, out.stderr
    for fragment in ("sys_configs[0]", str(poscar), "'32'", "element names", "VASP 5", "type_map = ['Cu']"):
        assert fragment in message[0], (fragment, message[0])


# ---------------------------------------------------------------- training template

@pytest.mark.parametrize("section, final, fragments", [
    ("loss", True, ["default_training_param.loss = (missing)", '{"type": "ener", "start_pref_e": 0.02',
                    "final_training"]),
    ("training", False, ["default_training_param.training = (missing)", '"numb_steps"']),
    ("model", False, ["default_training_param.model = (missing)", '"descriptor"']),
])
def test_missing_template_section(cu_run, section, final, fragments):
    folder, param = cu_run
    del param["default_training_param"][section]
    if final:
        param["final_training"] = {"numb_steps": 100, "validation": {"holdout_ratio": 0.2}}
    found = [m for m in problems(folder, param) if m.startswith(f"default_training_param.{section} =")]
    assert len(found) == 1, problems(folder, param)
    for fragment in fragments:
        assert fragment in found[0], (fragment, found[0])


def test_loss_and_learning_rate_may_take_deepmd_defaults_without_final_training(cu_run):
    folder, param = cu_run
    del param["default_training_param"]["loss"], param["default_training_param"]["learning_rate"]
    assert problems(folder, param) == []
