"""fp style abacus: INPUT/STRU/KPT read back by dpdata, checks at start, recorded ABACUS runs judged."""

import shutil

import dpdata
import numpy as np
import pytest

from dpgen_lite.cli import load_run_param
from dpgen_lite.label.abacus import read_input
from dpgen_lite.label.base import get_style
from dpgen_lite.params import ParamError, load_file, normalize
from dpgen_lite.schema import check_fp_style, init_bulk_args
from tests.conftest import FIXTURES
from tests.fp_helpers import (
    TYPE_MAP, assert_check_fails, assert_fails, example_run, fake_orb, fake_upf, grouped, write_task,
)

ABACUS = FIXTURES / "abacus"
INPUT = "INPUT_PARAMETERS\n# general\nsuffix  myrun\nstru_file STRU.x\necutwfc 80  # Ry\nscf_thr 1e-7\nscf_nmax 100\n"


def setup(tmp_path, input_text=INPUT, files=None, **extra):
    for el in TYPE_MAP:
        fake_upf(tmp_path / "pp" / f"{el}_ONCV_PBE-1.0.upf", el)
        fake_orb(tmp_path / "pp" / f"{el}_gga_7au_100Ry_2s2p1d.orb", el)
    (tmp_path / "INPUT").write_text(input_text)
    param = {"type_map": TYPE_MAP, "mass_map": [26.98, 24.305, 63.546], "fp_style": "abacus", "fp_pp_path": "pp",
             "fp_pp_files": files or [f"{el}_ONCV_PBE-1.0.upf" for el in TYPE_MAP], "fp_incar": "INPUT",
             "k_points": [3, 3, 2, 0, 0, 0], **extra}
    return get_style("abacus")(param, tmp_path)


def test_inputs_read_back_by_dpdata(tmp_path):
    style = setup(tmp_path, user_fp_params={"smearing_method": "mp", "smearing_sigma": 0.01, "cal_stress": 0})
    frame, task, files = write_task(style, tmp_path)
    assert files == ["INPUT", "STRU", "Al_ONCV_PBE-1.0.upf", "Cu_ONCV_PBE-1.0.upf", "KPT"]
    assert all((task / f).is_file() for f in files)  # the pseudopotentials are links
    back = dpdata.System(str(task / "STRU"), fmt="abacus/stru")
    symbols, positions = grouped(frame)
    assert [back["atom_names"][t] for t in back["atom_types"]] == symbols
    np.testing.assert_allclose(back["coords"][0], positions, atol=1e-8)
    np.testing.assert_allclose(back["cells"][0], frame["cells"][0], atol=1e-8)
    stru = (task / "STRU").read_text()
    assert "Al 26.980 Al_ONCV_PBE-1.0.upf" in stru and "Mg" not in stru
    keys = read_input(task / "INPUT")
    assert keys["ecutwfc"] == "80" and keys["smearing_method"] == "mp"
    assert (keys["calculation"], keys["cal_force"], keys["cal_stress"], keys["suffix"], keys["ntype"]) == \
        ("scf", "1", "1", "ABACUS", "2")
    assert "stru_file" not in keys
    assert (task / "KPT").read_text().split() == ["K_POINTS", "0", "Gamma", "3", "3", "2", "0", "0", "0"]


def test_lcao_orbitals_and_kspacing(tmp_path):
    style = setup(tmp_path, input_text=INPUT + "basis_type lcao\nkspacing 0.1\n",
                  fp_orb_files={el: f"{el}_gga_7au_100Ry_2s2p1d.orb" for el in TYPE_MAP})
    frame, task, files = write_task(style, tmp_path)
    assert "KPT" not in files and not (task / "KPT").exists()
    assert "Cu_gga_7au_100Ry_2s2p1d.orb" in files
    assert "NUMERICAL_ORBITAL\nAl_gga_7au_100Ry_2s2p1d.orb\nCu_gga_7au_100Ry_2s2p1d.orb" in (task / "STRU").read_text()
    assert read_input(task / "INPUT")["orbital_dir"] == "./"


@pytest.mark.parametrize("change, expected", [
    (dict(files=["Cu_ONCV_PBE-1.0.upf", "Mg_ONCV_PBE-1.0.upf", "Al_ONCV_PBE-1.0.upf"]),
     ["fp_pp_files[0]", "Cu_ONCV_PBE-1.0.upf", "for Cu", "used for Al", "reorder"]),
    (dict(files=["Al_ONCV_PBE-1.0.upf", "Mg_ONCV_PBE-1.0.upf", "Cu.upf"]),
     ["fp_pp_files[2]", "Cu.upf", "no such file"]),
    (dict(input_text=INPUT + "calculation md\n"), ["calculation = 'md'", "scf"]),
    (dict(k_points=None), ["no k-points", "kspacing", "k_points"]),
    (dict(input_text=INPUT + "basis_type lcao\n"), ["basis_type = 'lcao'", "fp_orb_files"]),
    (dict(fp_orb_files=[f"{el}_gga_7au_100Ry_2s2p1d.orb" for el in reversed(TYPE_MAP)]),
     ["fp_orb_files[0]", "orbital for Cu"]),
    (dict(fp_incar=None), ["fp_incar", "user_fp_params"]),
])
def test_bad_setup_fails_at_start(tmp_path, change, expected):
    assert_check_fails(setup(tmp_path, **change), expected)


def abacus_folder(tmp_path, input_name, out_name):
    """A folder laid out as ABACUS leaves it: INPUT, STRU.ch4 (named by stru_file), OUT.<suffix>/running_scf.log."""
    shutil.copy(ABACUS / input_name, tmp_path / "INPUT")
    shutil.copy(ABACUS / "STRU.ch4", tmp_path / "STRU.ch4")
    (tmp_path / out_name).mkdir()
    shutil.copy(ABACUS / out_name / "running_scf.log", tmp_path / out_name / "running_scf.log")
    return tmp_path


def test_scf_numbers_and_units(tmp_path):
    """CH4: energy = FINAL_ETOT (eV), forces = TOTAL-FORCE (eV/Å), virial = TOTAL-STRESS (kbar) x volume, in eV."""
    style = get_style("abacus")({"type_map": ["H", "C"]}, tmp_path)
    system = style.read_label(abacus_folder(tmp_path, "INPUT.ok", "OUT.ch4"))
    assert system["atom_names"] == ["H", "C"] and list(system["atom_numbs"]) == [4, 1]
    np.testing.assert_allclose(system["energies"], [-219.6499140427659142])
    c_row = system["atom_types"].tolist().index(1)
    np.testing.assert_allclose(system["forces"][0][c_row], [-0.154995, -1.114764, 0.083421])
    np.testing.assert_allclose(system["cells"][0], np.eye(3) * 10 * 0.529177210903, rtol=1e-6)  # 10 Bohr
    volume = (10 * 0.529177210903) ** 3
    stress_kbar = np.array([[17.95102076, 5.24181029, -4.35918400], [5.24181029, 13.26034469, 0.17341933],
                            [-4.35918400, 0.17341933, -1.90016343]])
    np.testing.assert_allclose(system["virials"][0], stress_kbar * volume / 1602.1766208, rtol=1e-5)


def test_unconverged_scf_is_a_failed_task(tmp_path):
    style = get_style("abacus")({"type_map": ["H", "C"]}, tmp_path)
    folder = abacus_folder(tmp_path, "INPUT.fail", "OUT.ch4fail")
    assert_fails(style, folder, r"not converged .*scf_nmax = 50")


def test_missing_output_is_a_failed_task(tmp_path):
    style = get_style("abacus")({"type_map": ["H", "C"]}, tmp_path)
    assert_fails(style, tmp_path, "no INPUT")
    shutil.copy(ABACUS / "INPUT.ok", tmp_path / "INPUT")
    assert_fails(style, tmp_path, r"no OUT.ch4/running_scf.log")


def test_cu_abacus_example_validates(cu_run):
    """The example passes validation once the user puts a Cu UPF in pp/ (not shipped)."""
    folder, cu_param = cu_run
    path = example_run(folder, cu_param, "cu_abacus")
    with pytest.raises(ParamError, match=r"fp_pp_files\[0\] = 'Cu_ONCV_PBE-1.0.upf' .*no such file"):
        load_run_param(str(path), folder)
    fake_upf(folder / "pp" / "Cu_ONCV_PBE-1.0.upf", "Cu")
    assert load_run_param(str(path), folder)["k_points"] == [3, 3, 3, 0, 0, 0]
    check_fp_style(normalize(init_bulk_args(), load_file(folder / "init.json"), "init.json"), folder)
