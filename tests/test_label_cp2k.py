"""fp style ``cp2k``: real CP2K 2023.1 runs (Debian package) and recorded CP2K outputs.

The raw numbers of each output are read back here by hand (test-side only) to check the units
dpdata converts to: energy Hartree -> eV, forces Hartree/Bohr -> eV/Å, stress GPa -> virial eV.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import dpdata
import numpy as np
import pytest

from dpgen_lite.label.base import FP_STYLES, FpTaskFailed
from dpgen_lite.label.cp2k import (
    SCF_NOT_CONVERGED,
    Cp2kStyle,
    keyword,
    parse_cp2k_input,
    render_cp2k_input,
    subsection,
    subsections,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "cp2k"
TEMPLATE = Path(__file__).resolve().parents[1] / "examples" / "al_cp2k" / "cp2k_template.inp"

HARTREE_EV = 27.211386245988  # CODATA 2018
BOHR_ANG = 0.529177210903
EV_A3_GPA = 160.21766208  # 1 eV/Å^3 in GPa

A_AL = 4.05
SHIFT = 0.1  # Å, atom 0 moved along +x
# cheap but converged settings for 4 Al atoms (GTH-PBE-q3 is soft: 200 Ry changes E by < 1e-7 Ha)
FAST = {"cutoff": 200, "rel_cutoff": 40, "kpoints": [2, 2, 2], "smearing_temperature": 1000}


def al_frame() -> dpdata.System:
    """Conventional fcc Al cell (4 atoms, a = 4.05 Å), atom 0 displaced by +SHIFT Å along x."""
    coords = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]) * A_AL
    coords[0, 0] += SHIFT
    return dpdata.System(
        data={
            "atom_names": ["Al"],
            "atom_numbs": [4],
            "atom_types": np.zeros(4, dtype=int),
            "cells": (np.eye(3) * A_AL)[np.newaxis],
            "coords": coords[np.newaxis],
            "orig": np.zeros(3),
            "nopbc": False,
        }
    )


def run_cp2k(style: Cp2kStyle, task_dir: Path) -> float:
    """Run the style's default command in ``task_dir``; return the wall time in s."""
    start = time.perf_counter()
    subprocess.run(style.default_command(), shell=True, cwd=task_dir, timeout=300, check=False)
    return time.perf_counter() - start


def raw_energy_ha(text: str) -> float:
    return float(re.findall(r"ENERGY\| Total FORCE_EVAL \( QS \) energy[^-\d]*(-?\d+\.\d+)", text)[-1])


def raw_forces_au(text: str) -> np.ndarray:
    """The ``ATOMIC FORCES in [a.u.]`` block of CP2K <= 2023 (test-side check of units only)."""
    block = text.split("ATOMIC FORCES in [a.u.]")[-1].split("SUM OF ATOMIC FORCES")[0]
    rows = [ln.split()[3:6] for ln in block.splitlines()[3:] if ln.strip()]
    return np.array(rows, dtype=float)


# --------------------------------------------------------------------------------------
# real CP2K runs
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def al_run(tmp_path_factory):
    """One real CP2K run of the perturbed 4-atom Al cell; type_map puts Al second."""
    style = Cp2kStyle({"type_map": ["Mg", "Al"], "fp_params": dict(FAST)}, Path("."))
    style.check()
    task = tmp_path_factory.mktemp("al") / "task.000"
    assert style.write_inputs(al_frame(), task) == ["input.inp"]
    seconds = run_cp2k(style, task)
    return style, task, seconds


def test_registered():
    assert FP_STYLES["cp2k"] is Cp2kStyle


def test_default_command_uses_cp2ks_own_mpirun():
    cmd = Cp2kStyle({"type_map": ["Al"]}, Path(".")).default_command()
    assert "cp2k.psmp -i input.inp > output 2>&1" in cmd
    assert "OMPI_ALLOW_RUN_AS_ROOT=1" in cmd and "OMP_NUM_THREADS=1" in cmd
    # the venv's MPICH mpirun would start independent serial CP2K copies
    mpirun = cmd.split()[3]
    assert mpirun.endswith("mpirun") and ".venv" not in mpirun


def test_al_label(al_run):
    style, task, seconds = al_run
    assert seconds < 60, f"4-atom Al took {seconds:.1f} s"
    text = (task / "output").read_text()
    assert "SCF run converged" in text

    system = style.read_label(task)
    assert system.get_nframes() == 1
    assert system["atom_names"] == ["Mg", "Al"]
    assert list(system["atom_numbs"]) == [0, 4]
    assert list(system["atom_types"]) == [1, 1, 1, 1]
    np.testing.assert_allclose(system["cells"][0], np.eye(3) * A_AL, atol=1e-10)
    np.testing.assert_allclose(system["coords"][0], al_frame()["coords"][0], atol=1e-6)

    # energy: eV, per atom about -56.2 eV for GTH-PBE-q3 Al (3 valence electrons)
    energy = system["energies"][0]
    assert energy == pytest.approx(raw_energy_ha(text) * HARTREE_EV, rel=1e-6)
    assert -57.0 < energy / 4 < -55.5

    # forces: eV/Å, the displaced atom is pulled back (-x), momentum conserved
    forces = system["forces"][0]
    assert forces.shape == (4, 3)
    np.testing.assert_allclose(forces, raw_forces_au(text) * HARTREE_EV / BOHR_ANG, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(forces.sum(axis=0), 0, atol=1e-3)
    assert forces[0, 0] < -0.05
    np.testing.assert_allclose(forces[:, 1:], 0, atol=1e-4)  # displacement only along x

    # virial: eV, = stress (GPa) x volume; symmetric, yz-isotropic by symmetry
    virial = system["virials"][0]
    stress = re.search(r"STRESS\| Analytical stress tensor \[GPa\]\n.*\n((?:.*\n){3})", text).group(1)
    stress = np.array([ln.split()[2:5] for ln in stress.splitlines()], dtype=float)
    np.testing.assert_allclose(virial, stress * A_AL**3 / EV_A3_GPA, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(virial, virial.T, atol=1e-6)
    assert virial[1, 1] == pytest.approx(virial[2, 2], abs=1e-4)
    assert abs(virial[0, 0] - virial[1, 1]) > 1e-3  # the x displacement breaks cubic symmetry


def test_unconverged_scf_from_template_is_rejected(tmp_path):
    """Template + fp_params + user_fp_params (MAX_SCF 2): CP2K goes on, read_label must refuse."""
    shutil.copy(TEMPLATE, tmp_path / "cp2k_template.inp")
    param = {
        "type_map": ["Al"],
        "fp_template": "cp2k_template.inp",
        "fp_params": {"cutoff": 100, "rel_cutoff": 30, "kpoints": [1, 1, 1]},
        "user_fp_params": {"FORCE_EVAL": {"DFT": {"SCF": {"MAX_SCF": 2}}}},
    }
    style = Cp2kStyle(param, tmp_path)
    style.check()
    task = tmp_path / "task.000"
    style.write_inputs(al_frame(), task)
    inp = (task / "input.inp").read_text()
    assert "MAX_SCF 2" in inp and "KPOINTS" not in inp and "CUTOFF 100" in inp
    run_cp2k(style, task)
    assert SCF_NOT_CONVERGED in (task / "output").read_text()
    with pytest.raises(FpTaskFailed, match="SCF run NOT converged"):
        style.read_label(task)


def test_abort_is_reported_with_cp2ks_message(tmp_path):
    param = {
        "type_map": ["Al"],
        "fp_params": {"cutoff": 100, "rel_cutoff": 30},
        "user_fp_params": {"FORCE_EVAL": {"SUBSYS": {"KIND": {"_": "Al", "BASIS_SET": "NOPE-BASIS"}}}},
    }
    style = Cp2kStyle(param, tmp_path)
    with pytest.raises(ValueError, match="NOPE-BASIS"):
        style.check()
    task = tmp_path / "task.000"
    style.write_inputs(al_frame(), task)
    run_cp2k(style, task)
    with pytest.raises(FpTaskFailed, match=r"CP2K aborted: .*<NOPE-BASIS>.*not found"):
        style.read_label(task)


def test_missing_output(tmp_path):
    with pytest.raises(FpTaskFailed, match="no 'output'"):
        Cp2kStyle({"type_map": ["Al"]}, tmp_path).read_label(tmp_path)


def test_truncated_output_is_rejected(tmp_path, al_run):
    _, task, _ = al_run
    text = (task / "output").read_text()
    (tmp_path / "output").write_text(text.split("PROGRAM ENDED AT")[0])
    with pytest.raises(FpTaskFailed, match="did not finish"):
        Cp2kStyle({"type_map": ["Al"]}, tmp_path).read_label(tmp_path)


# --------------------------------------------------------------------------------------
# recorded outputs
# --------------------------------------------------------------------------------------


def test_recorded_fe_o_output(tmp_path):
    """CP2K 6.1, 30-atom Fe/O oxide with kinds Fe1, Fe2, O; stress in the old layout."""
    shutil.copy(FIXTURES / "cp2k_output", tmp_path / "output")
    style = Cp2kStyle({"type_map": ["O", "Fe1", "Fe2"]}, tmp_path)
    system = style.read_label(tmp_path)
    assert system.get_nframes() == 1
    assert list(system["atom_numbs"]) == [18, 6, 6]
    assert list(system["atom_types"][:4]) == [1, 2, 1, 2] and set(system["atom_types"][12:]) == {0}
    assert system["energies"][0] == pytest.approx(-1766.225653832774242 * HARTREE_EV, rel=1e-9)
    # atom 13 (O): 0.01425438 -0.00005072 -0.00001088 Hartree/Bohr
    np.testing.assert_allclose(
        system["forces"][0, 12], np.array([0.01425438, -0.00005072, -0.00001088]) * HARTREE_EV / BOHR_ANG,
        rtol=1e-6,
    )
    np.testing.assert_allclose(system["forces"][0].sum(axis=0), 0, atol=1e-6)
    cell = np.array([[5.038, 0, 0], [-2.519, 4.363, 0], [0, 0, 13.772]])
    np.testing.assert_allclose(system["cells"][0], cell)
    volume = np.linalg.det(cell)
    assert volume == pytest.approx(302.722, abs=0.01)
    # STRESS TENSOR [GPa]: xx -7.95728223, xy -0.07686533
    assert system["virials"][0, 0, 0] == pytest.approx(-7.95728223 * volume / EV_A3_GPA, rel=1e-6)
    assert system["virials"][0, 0, 1] == pytest.approx(-0.07686533 * volume / EV_A3_GPA, rel=1e-6)
    np.testing.assert_allclose(system["virials"][0], system["virials"][0].T)
    np.testing.assert_allclose(system["coords"][0, 12], [1.541124, 0, 3.443])

    with pytest.raises(FpTaskFailed, match="Fe1"):
        Cp2kStyle({"type_map": ["Fe", "O"]}, tmp_path).read_label(tmp_path)


def test_recorded_2025_output(tmp_path):
    shutil.copy(FIXTURES / "cp2k_2025_output", tmp_path / "output")
    system = Cp2kStyle({"type_map": ["H"]}, tmp_path).read_label(tmp_path)
    assert system["energies"][0] == pytest.approx(-7.364190264587725 * HARTREE_EV, rel=1e-9)
    assert system["forces"][0, 0, 0] == pytest.approx(-5.73440344e-02 * HARTREE_EV / BOHR_ANG, rel=1e-6)
    assert system["virials"][0, 0, 0] == pytest.approx(0.12345678 * 125.0 / EV_A3_GPA, rel=1e-6)


# --------------------------------------------------------------------------------------
# input building and checks (no CP2K run)
# --------------------------------------------------------------------------------------


def test_dpgen_style_template_and_user_params(tmp_path):
    """A DP-GEN external_input_path template (ABC cell, coord.xyz topology, LOW print level)."""
    (tmp_path / "ext.inp").write_text(
        """@SET CUT 300
&GLOBAL
  RUN_TYPE GEO_OPT        ! replaced
  PRINT_LEVEL LOW
&END GLOBAL
&FORCE_EVAL
  &DFT
    BASIS_SET_FILE_NAME BASIS_MOLOPT
    POTENTIAL_FILE_NAME GTH_POTENTIALS
    &MGRID
      CUTOFF ${CUT}
    &END
    &XC
      &XC_FUNCTIONAL PBE
      &END XC_FUNCTIONAL
    &END XC
  &END DFT
  &SUBSYS
    &CELL
      ABC 10 10 10
      PERIODIC XYZ
    &END CELL
    &TOPOLOGY
      COORD_FILE_NAME coord.xyz
      COORD_FILE_FORMAT XYZ
    &END TOPOLOGY
  &END SUBSYS
  &PRINT
    &FORCES ON
      FILENAME forces
    &END FORCES
  &END PRINT
&END FORCE_EVAL
"""
    )
    param = {
        "type_map": ["Al", "Mg"],
        "external_input_path": "ext.inp",
        "user_fp_params": {
            "FORCE_EVAL": {
                "DFT": {"SCF": {"EPS_SCF": 1e-7, "SMEAR": {"_": "ON", "METHOD": "FERMI_DIRAC"}}},
                "SUBSYS": {
                    "KIND": {
                        "_": ["Al", "Mg"],
                        "BASIS_SET": ["DZVP-MOLOPT-SR-GTH", "SZV-MOLOPT-SR-GTH"],
                        "POTENTIAL": "GTH-PBE",
                    }
                },
            }
        },
    }
    style = Cp2kStyle(param, tmp_path)
    style.check()
    style.write_inputs(al_frame(), tmp_path / "task")
    text = (tmp_path / "task" / "input.inp").read_text()
    root = parse_cp2k_input(text)
    assert render_cp2k_input(parse_cp2k_input(text)) == text
    glob = root.get_subsection("GLOBAL")
    assert keyword(glob, "RUN_TYPE") == "ENERGY_FORCE"
    assert keyword(glob, "PRINT_LEVEL") == "MEDIUM"
    fe = root.get_subsection("FORCE_EVAL")
    assert keyword(fe, "STRESS_TENSOR") == "ANALYTICAL"
    forces = fe.get_subsection("PRINT/FORCES")
    assert forces.params == "ON" and keyword(forces, "FILENAME") is None
    assert fe.get_subsection("PRINT/STRESS_TENSOR").params == "ON"
    subsys = fe.get_subsection("SUBSYS")
    cell = subsys.get_subsection("CELL")
    assert keyword(cell, "ABC") is None and keyword(cell, "PERIODIC") == "XYZ"
    assert keyword(cell, "A").split()[1:] == ["4.0500000000", "0.0000000000", "0.0000000000"]
    assert keyword(subsys.get_subsection("TOPOLOGY"), "COORD_FILE_NAME") is None
    coord_lines = [line for line in subsys.get_subsection("COORD").keywords if line.split()[0] == "Al"]
    assert len(coord_lines) == 4
    assert keyword(subsection(subsys, "KIND", "Al"), "BASIS_SET") == "DZVP-MOLOPT-SR-GTH"
    assert keyword(subsection(subsys, "KIND", "Mg"), "BASIS_SET") == "SZV-MOLOPT-SR-GTH"
    scf = fe.get_subsection("DFT/SCF")
    assert keyword(scf, "EPS_SCF") == "1e-07"
    assert scf.get_subsection("SMEAR").params == "ON"
    assert "@SET CUT 300" in text and "CUTOFF ${CUT}" in text


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ({"fp_params": {"cutof": 300}}, r"unknown keys \['cutof'\]"),
        ({"fp_params": {"kpoints": [2, 2]}}, r"fp_params.kpoints = \[2, 2\]"),
        ({"fp_params": {"smearing_temperature": -5}}, "smearing_temperature = -5"),
        ({"fp_params": {"max_scf": 0}}, "max_scf = 0"),
        ({"fp_params": {"xc": "PBEX"}}, r"fp_params.xc = 'PBEX'.*'PBE'"),
        ({"fp_params": {"potential": "GTH-FOO"}}, r"POTENTIAL 'GTH-FOO' for element 'Al'.*GTH-PBE-Q3"),
        ({"fp_params": {"basis_set": {"Mg": "DZVP-MOLOPT-SR-GTH"}}}, r"fp_params.basis_set = .* no entry for 'Al'"),
        ({"fp_params": {"basis_set_file": "NO_SUCH_FILE"}}, "'NO_SUCH_FILE'.*data_dir"),
        ({"fp_template": "missing.inp"}, "fp_template = 'missing.inp': no such file"),
        ({"type_map": ["Al", "X1"]}, "'X1' is not an element symbol"),
        ({"user_fp_params": {"FORCE_EVAL": [{}, {}]}}, "2 &FORCE_EVAL sections"),
    ],
)
def test_check_rejects(tmp_path, param, message):
    full = {"type_map": ["Al"], **param}
    with pytest.raises(ValueError, match=message):
        Cp2kStyle(full, tmp_path).check()


def test_merge_dict_rules():
    from dpgen_lite.label.cp2k import merge_dict

    root = parse_cp2k_input(
        """&FORCE_EVAL
  &DFT
    &XC
      &XC_FUNCTIONAL PBE
      &END XC_FUNCTIONAL
    &END XC
    &SCF
      MAX_SCF 50
      max_scf 60
    &END SCF
  &END DFT
  &SUBSYS
    &KIND Al
      BASIS_SET DZVP-MOLOPT-SR-GTH
    &END KIND
  &END SUBSYS
&END FORCE_EVAL
"""
    )
    merge_dict(
        root,
        {
            "FORCE_EVAL": {
                "DFT": {
                    "XC": {"XC_FUNCTIONAL": {"_": "BLYP"}},
                    "SCF": {"max_scf": 10, "EPS_SCF": None, "IGNORE_CONVERGENCE_FAILURE": False},
                    "KPOINTS": {"SCHEME": ["MONKHORST-PACK", 2, 2, 2]},
                },
                "SUBSYS": {"KIND": [{"_": "al", "POTENTIAL": "GTH-PBE"}, {"_": "Mg", "POTENTIAL": "GTH-PBE"}]},
            }
        },
    )
    dft = root.get_subsection("FORCE_EVAL/DFT")
    functionals = subsections(dft.get_subsection("XC"), "XC_FUNCTIONAL")
    assert [f.params for f in functionals] == ["BLYP"]
    scf = dft.get_subsection("SCF")
    assert scf.keywords == ["MAX_SCF 10", "IGNORE_CONVERGENCE_FAILURE .FALSE."] and scf.subsections == []
    assert keyword(dft.get_subsection("KPOINTS"), "SCHEME") == "MONKHORST-PACK 2 2 2"
    kinds = subsections(root.get_subsection("FORCE_EVAL/SUBSYS"), "KIND")
    assert [k.params for k in kinds] == ["Al", "Mg"]
    assert keyword(kinds[0], "BASIS_SET") == "DZVP-MOLOPT-SR-GTH"
    assert keyword(kinds[0], "POTENTIAL") == "GTH-PBE"
    with pytest.raises(ValueError, match="closes section &SCF"):
        parse_cp2k_input("&SCF\n&END DFT\n")
    with pytest.raises(ValueError, match="never closed"):
        parse_cp2k_input("&SCF\n")


def test_generated_input_defaults_and_no_smearing(tmp_path):
    style = Cp2kStyle({"type_map": ["Al"]}, tmp_path)
    style.check()
    style.write_inputs(al_frame(), tmp_path / "a")
    scf = parse_cp2k_input((tmp_path / "a" / "input.inp").read_text()).get_subsection("FORCE_EVAL/DFT/SCF")
    assert keyword(scf.get_subsection("SMEAR"), "ELECTRONIC_TEMPERATURE") == "[K] 1000.0"
    assert keyword(scf, "ADDED_MOS") == "10"
    assert keyword(scf, "MAX_SCF") == "100"

    style = Cp2kStyle({"type_map": ["Al"], "fp_params": {"smearing_temperature": 0}}, tmp_path)
    style.check()
    style.write_inputs(al_frame(), tmp_path / "b")
    text = (tmp_path / "b" / "input.inp").read_text()
    assert "SMEAR" not in text and "ADDED_MOS" not in text and "KPOINTS" not in text


def test_interleaved_types_keep_atom_order(tmp_path):
    """Atoms stay in frame order, each COORD line named by its type_map name; KINDs only for present ones."""
    cell = np.array([[4.1, 0.0, 0.0], [0.3, 4.0, 0.0], [0.2, -0.1, 4.2]])
    frame = dpdata.System(
        data={
            "atom_names": ["Al", "Mg", "Cu"],
            "atom_numbs": [2, 0, 2],
            "atom_types": np.array([2, 0, 2, 0]),
            "cells": cell[np.newaxis],
            "coords": np.array([[[0.1, 0.2, 0.3], [1.0, 1.1, 1.2], [2.0, 2.1, 2.2], [3.0, 3.1, 3.2]]]),
            "orig": np.zeros(3),
            "nopbc": False,
        }
    )
    style = Cp2kStyle({"type_map": ["Al", "Mg", "Cu"], "fp_params": {"basis_set": "DZVP-MOLOPT-SR-GTH"}}, tmp_path)
    style.check()
    style.write_inputs(frame, tmp_path / "t")
    subsys = parse_cp2k_input((tmp_path / "t" / "input.inp").read_text()).get_subsection("FORCE_EVAL/SUBSYS")
    lines = [line.split() for line in subsys.get_subsection("COORD").keywords if line.split()[0] not in ("UNIT", "SCALED")]
    assert [parts[0] for parts in lines] == ["Cu", "Al", "Cu", "Al"]
    np.testing.assert_allclose([[float(v) for v in parts[1:]] for parts in lines], frame["coords"][0])
    rows = [[float(v) for v in keyword(subsys.get_subsection("CELL"), k).split()[1:]] for k in "ABC"]
    np.testing.assert_allclose(rows, cell)
    assert [k.params for k in subsections(subsys, "KIND")] == ["Al", "Cu"]  # no Mg: absent from the frame
