"""fp style pwscf: pw.x input read back by ASE, checks at start, recorded pw.x outputs parsed and judged."""

import shutil

import ase.io
import numpy as np
import pytest

from dpgen_lite.label.base import get_style
from tests.conftest import FIXTURES
from tests.fp_helpers import TYPE_MAP, assert_check_fails, assert_fails, fake_upf, grouped, write_task

QE = FIXTURES / "qe"
RY = 13.605693122994  # eV
BOHR = 0.529177210903  # Å
KBAR = 1602.1766208  # kbar per eV/Å^3
FP_PARAMS = {"ecut": 60, "ediff": 1e-8, "smearing": "mv", "sigma": 0.02, "kspacing": 0.3}


def setup(tmp_path, files=None, **extra):
    for el in TYPE_MAP:
        fake_upf(tmp_path / "pp" / f"{el}.pbe-n-kjpaw.UPF", el)
    param = {"type_map": TYPE_MAP, "fp_style": "pwscf", "fp_pp_path": "pp", "fp_params": FP_PARAMS,
             "fp_pp_files": files or [f"{el}.pbe-n-kjpaw.UPF" for el in TYPE_MAP], **extra}
    return get_style("pwscf")(param, tmp_path)


def test_input_read_back_by_ase(tmp_path):
    style = setup(tmp_path)
    frame, task, files = write_task(style, tmp_path)
    assert files == ["input", "Al.pbe-n-kjpaw.UPF", "Cu.pbe-n-kjpaw.UPF"]
    atoms = ase.io.read(task / "input", format="espresso-in")
    symbols, positions = grouped(frame)
    assert atoms.get_chemical_symbols() == symbols
    np.testing.assert_allclose(atoms.positions, positions, atol=1e-8)
    np.testing.assert_allclose(np.array(atoms.cell), frame["cells"][0], atol=1e-8)
    text = (task / "input").read_text()
    for fragment in ("calculation      = 'scf'", "tprnfor          = .true.", "tstress          = .true.",
                     "ecutwfc          = 60", "occupations      = 'smearing'", "degauss          = 0.02",
                     "conv_thr         = 1e-08", "Al 26.98", "Al.pbe-n-kjpaw.UPF"):
        assert fragment in text, fragment
    assert "Mg" not in text
    mesh = np.ceil(2 * np.pi * np.linalg.norm(np.linalg.inv(frame["cells"][0]).T, axis=1) / 0.3).astype(int)
    assert text.split("K_POINTS automatic\n")[1].split()[:6] == [str(n) for n in mesh] + ["0", "0", "0"]
    assert (task / "Cu.pbe-n-kjpaw.UPF").resolve() == (tmp_path / "pp" / "Cu.pbe-n-kjpaw.UPF").resolve()


def test_user_fp_params_namelists(tmp_path):
    user = {"control": {"calculation": "scf", "disk_io": "none"}, "system": {"ecutwfc": 45, "vdw_corr": "TS"},
            "electrons": {"conv_thr": 1e-9}, "kspacing": [0.2, 0.2, 0.4]}
    style = setup(tmp_path, user_fp_params=user, fp_params=None)
    _, task, _ = write_task(style, tmp_path)
    text = (task / "input").read_text()
    assert "disk_io          = 'none'" in text and "vdw_corr         = 'TS'" in text and "ecutwfc          = 45" in text


@pytest.mark.parametrize("change, expected", [
    (dict(files=["Cu.pbe-n-kjpaw.UPF", "Mg.pbe-n-kjpaw.UPF", "Al.pbe-n-kjpaw.UPF"]),
     ["fp_pp_files[0]", "Cu.pbe-n-kjpaw.UPF", "for Cu", "used for Al", "reorder"]),
    (dict(files=["Al.pbe-n-kjpaw.UPF", "Mg.pbe-n-kjpaw.UPF", "Cu.UPF"]), ["fp_pp_files[2]", "Cu.UPF", "no such file"]),
    (dict(fp_params={"ecut": 60, "ediff": 1e-8}), ["missing ['smearing', 'sigma', 'kspacing']", "user_fp_params"]),
    (dict(user_fp_params={"system": {"ecutwfc": 45}}), ["user_fp_params.kspacing"]),
    (dict(user_fp_params={"control": {"calculation": "relax"}, "kspacing": 0.3}), ["'relax'", "'scf'"]),
])
def test_bad_setup_fails_at_start(tmp_path, change, expected):
    assert_check_fails(setup(tmp_path, **change), expected)


def task_from(tmp_path, name, output_text=None):
    shutil.copy(QE / f"{name}.in", tmp_path / "input")
    (tmp_path / "output").write_text(output_text if output_text is not None else (QE / f"{name}.out").read_text())
    return tmp_path


def test_al_scf_numbers_and_units(tmp_path):
    """fcc Al, 4 atoms: energy Ry -> eV, virial = stress (kbar) x volume in eV."""
    system = get_style("pwscf")({"type_map": ["Al"]}, tmp_path).read_label(task_from(tmp_path, "Al"))
    np.testing.assert_allclose(system["energies"], [-21.76175741 * RY])
    np.testing.assert_allclose(system["cells"][0], np.eye(3) * 4.04)
    np.testing.assert_allclose(system["virials"][0], -37.45 * np.eye(3) * 4.04 ** 3 / KBAR, atol=1e-8)


def test_ch4_scf_forces(tmp_path):
    """CH4 (ibrav = 1): forces Ry/Bohr -> eV/Å in the input's atom order; C listed last."""
    system = get_style("pwscf")({"type_map": ["C", "H"]}, tmp_path).read_label(task_from(tmp_path, "01"))
    np.testing.assert_allclose(system["energies"], [-16.15090531 * RY])
    c_row = system["atom_types"].tolist().index(0)
    np.testing.assert_allclose(system["forces"][0][c_row], np.array([-0.00214558, -0.04593271, 0.00378156]) * RY / BOHR)
    stress_kbar = np.array([[1.97, 0.78, -0.62], [0.78, 1.41, 0.04], [-0.62, 0.04, -1.08]])
    np.testing.assert_allclose(system["virials"][0], stress_kbar * 10.0 ** 3 / KBAR, rtol=1e-6)


def test_unconverged_or_crashed_scf_is_a_failed_task(tmp_path):
    """pw.x's own markers decide: 'convergence NOT achieved', or no 'convergence has been achieved' at all."""
    style = get_style("pwscf")({"type_map": ["Al"]}, tmp_path)
    text = (QE / "Al.out").read_text()
    head = text[: text.index("     convergence has been achieved")]
    task_from(tmp_path, "Al", head + "     convergence NOT achieved after 100 iterations: stopping\n")
    assert_fails(style, tmp_path, "not converged")
    task_from(tmp_path, "Al", head)
    assert_fails(style, tmp_path, "no converged SCF")
    (tmp_path / "output").unlink()
    assert_fails(style, tmp_path, "no output")
