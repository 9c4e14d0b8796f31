"""fp style vasp: inputs read back by ASE, POTCAR checks at start, recorded OUTCARs parsed and judged."""

import json
import re
import shutil

import ase.io
import numpy as np
import pytest

from dpgen_lite.cli import load_run_param
from dpgen_lite.label.base import get_style
from dpgen_lite.label.stage import TASK_FILE, collect_labels
from dpgen_lite.label.vasp import load_outcar
from dpgen_lite.params import ParamError, load_file, normalize
from dpgen_lite.schema import check_fp_style, init_bulk_args
from tests.conftest import FIXTURES
from tests.fp_helpers import (
    TYPE_MAP, assert_check_fails, assert_fails, example_run, fake_potcar, grouped, write_task,
)

VASP = FIXTURES / "vasp"
INCAR = ("PREC = Accurate\nENCUT = 500\nISMEAR = 1\nSIGMA = 0.2\nEDIFF = 1e-6\nNSW = 0\n"
         "KSPACING = 0.2\nKGAMMA = .TRUE.\n")


def setup(tmp_path, incar=INCAR, files=None, **extra):
    for el in TYPE_MAP:
        fake_potcar(tmp_path / "pp" / f"POTCAR.{el}", el)
    (tmp_path / "INCAR").write_text(incar)
    param = {"type_map": TYPE_MAP, "fp_style": "vasp", "fp_pp_path": "pp", "fp_incar": "INCAR",
             "fp_pp_files": files or [f"POTCAR.{el}" for el in TYPE_MAP], **extra}
    return get_style("vasp")(param, tmp_path)


def test_inputs_read_back_by_ase(tmp_path):
    style = setup(tmp_path)
    frame, task, files = write_task(style, tmp_path)
    assert files == ["POSCAR", "INCAR", "POTCAR"]
    atoms = ase.io.read(task / "POSCAR", format="vasp")
    symbols, positions = grouped(frame)
    assert atoms.get_chemical_symbols() == symbols  # Al first (type_map order), Mg absent
    np.testing.assert_allclose(atoms.positions, positions, atol=1e-8)
    np.testing.assert_allclose(np.array(atoms.cell), frame["cells"][0], atol=1e-10)
    potcar = (task / "POTCAR").read_text()
    assert re.findall(r"TITEL\s*=\s*PAW_PBE (\w+)", potcar) == ["Al", "Cu"]
    assert potcar.splitlines()[0].split()[1] == "Al"
    assert not (task / "KPOINTS").exists()
    assert "KSPACING = 0.2" in (task / "INCAR").read_text()


def test_aniso_kspacing_writes_kpoints(tmp_path):
    style = setup(tmp_path, incar=INCAR.replace("KSPACING = 0.2\nKGAMMA = .TRUE.\n", ""),
                  fp_aniso_kspacing=[0.2, 0.2, 0.5])
    frame, task, files = write_task(style, tmp_path)
    assert "KPOINTS" in files
    lines = (task / "KPOINTS").read_text().splitlines()
    recip = np.linalg.norm(np.linalg.inv(frame["cells"][0]).T, axis=1) * 2 * np.pi
    assert lines[2] == "Gamma"
    assert [int(n) for n in lines[3].split()] == list(np.ceil(recip / [0.2, 0.2, 0.5]).astype(int))
    assert "KSPACING" not in (task / "INCAR").read_text()


def test_element_keyed_pp_files(tmp_path):
    style = setup(tmp_path, files={"Cu": "POTCAR.Cu", "Al": "POTCAR.Al", "Mg": "POTCAR.Mg"})
    style.check()


@pytest.mark.parametrize("change, expected", [
    (dict(files=["POTCAR.Cu", "POTCAR.Mg", "POTCAR.Al"]),
     ["fp_pp_files[0]", "POTCAR.Cu", "for Cu", "used for Al", "['POTCAR.Al', 'POTCAR.Mg', 'POTCAR.Cu']"]),
    (dict(files={"Al": "POTCAR.Al", "Mg": "POTCAR.Cu", "Cu": "POTCAR.Mg"}), ["fp_pp_files['Mg']", "for Cu"]),
    (dict(files=["POTCAR.Al", "POTCAR.Mg", "POTCAR.Zn"]), ["fp_pp_files[2]", "POTCAR.Zn", "for Cu", "no such file"]),
    (dict(files=["POTCAR.Al", "POTCAR.Cu"]), ["2 file(s) for 3", "type_map order"]),
    (dict(incar=INCAR.replace("NSW = 0", "NSW = 100\nIBRION = 0")), ["NSW = 100", "NSW = 0"]),
    (dict(incar=INCAR.replace("KSPACING = 0.2\n", "")), ["KSPACING", "fp_aniso_kspacing"]),
    (dict(incar=INCAR + "ISIF = 0\n"), ["ISIF = 0", "virial"]),
])
def test_bad_setup_fails_at_start(tmp_path, change, expected):
    assert_check_fails(setup(tmp_path, **change), expected)


def test_outcar_numbers_and_units():
    """OUTCAR.6362 (B8O6, 2 ionic steps): energies = TOTEN (eV), forces = TOTAL-FORCE (eV/Å),
    virials = the 'Total' row of 'FORCE on cell' (eV); dpdata turns the cell lower-triangular,
    so forces and virial are compared in the rotated frame."""
    text = (VASP / "OUTCAR.6362").read_text()
    system = load_outcar(VASP / "OUTCAR.6362", type_map=["B", "O"])
    assert system.get_nframes() == 2 and list(system["atom_numbs"]) == [8, 6]
    toten = [float(x) for x in re.findall(r"free  energy   TOTEN\s*=\s*(\S+)", text)]
    np.testing.assert_allclose(system["energies"], toten)
    rows = text.split("direct lattice vectors")[1].splitlines()[1:4]
    cell = np.array([[float(x) for x in row.split()[:3]] for row in rows])
    rot = np.linalg.solve(cell, system["cells"][0])
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-6)
    block = text.split("TOTAL-FORCE (eV/Angst)")[1].splitlines()[2:16]
    forces = np.array([[float(x) for x in row.split()[3:6]] for row in block])
    np.testing.assert_allclose(system["forces"][0], forces @ rot, atol=1e-5)
    xx, yy, zz, xy, yz, zx = (float(x) for x in re.findall(r"^\s*Total\s+(.*)$", text, flags=re.M)[0].split())
    virial = np.array([[xx, xy, zx], [xy, yy, yz], [zx, yz, zz]])
    np.testing.assert_allclose(system["virials"][0], rot.T @ virial @ rot, atol=2e-4)


@pytest.mark.parametrize("name, reason", [
    ("OUTCAR.ch4.unconverged", r"not converged \(all NELM = 15 steps used\) in 2 of 3"),
    # a single electronic step with NELM = 1: VASP 5 prints "aborting loop because EDIFF is reached" but the
    # SCF stopped at NELM with an energy change of 18 eV; that is why dpdata reads 0 frames from it
    ("OUTCAR.ch4.1step", r"not converged \(all NELM = 1 steps used\) in 1 of 1"),
])
def test_unconverged_outcar_is_a_failed_task(tmp_path, name, reason):
    shutil.copy(VASP / name, tmp_path / "OUTCAR")
    assert_fails(get_style("vasp")({"type_map": ["H", "C"]}, tmp_path), tmp_path, reason)


def test_missing_or_crashed_outcar(tmp_path):
    style = get_style("vasp")({"type_map": ["B", "O"]}, tmp_path)
    assert_fails(style, tmp_path, "no OUTCAR")
    text = (VASP / "OUTCAR.6362").read_text()
    (tmp_path / "OUTCAR").write_text(text[: text.index("free  energy   TOTEN")])
    assert_fails(style, tmp_path, "holds no energy")


def test_collect_labels_keeps_converged_frames_only(tmp_path):
    """A task with the first ionic step of OUTCAR.6362 is labelled; an unconverged one is reported."""
    text = (VASP / "OUTCAR.6362").read_text()
    first = text[: text.index("\n", text.index("free  energy   TOTEN")) + 1]
    work = tmp_path / "02.fp"
    for k, content in enumerate([first, (VASP / "OUTCAR.ch4.unconverged").read_text()]):
        task = work / f"task.000.{k:06d}"
        task.mkdir(parents=True)
        (task / "OUTCAR").write_text(content)
        (task / TASK_FILE).write_text(json.dumps({"sys_idx": 0, "source": {}, "forward_files": []}))
    style = get_style("vasp")({"type_map": ["B", "O", "H", "C"]}, tmp_path)
    report = collect_labels(style, work, ratio_failed=0.5)
    assert report["labelled"] == 1 and report["failed"][0]["task"] == "task.000.000001"
    assert "not converged" in report["failed"][0]["reason"]
    energy = np.load(work / "data.000" / "set.000" / "energy.npy")
    np.testing.assert_allclose(energy.ravel(), [float(re.findall(r"free  energy   TOTEN\s*=\s*(\S+)", first)[-1])])
    assert (work / "data.000" / "set.000" / "virial.npy").is_file()


def test_cu_vasp_example_validates(cu_run):
    """The example passes validation once the user puts a Cu POTCAR in pp/ (licensed: not shipped)."""
    folder, cu_param = cu_run
    path = example_run(folder, cu_param, "cu_vasp")
    with pytest.raises(ParamError, match=r"fp_pp_files\[0\] = 'POTCAR.Cu' \(the POTCAR for Cu\): no such file"):
        load_run_param(str(path), folder)
    fake_potcar(folder / "pp" / "POTCAR.Cu", "Cu")
    assert load_run_param(str(path), folder)["fp_skip_bad_box"] == "length_ratio:5;height_ratio:5"
    init = normalize(init_bulk_args(), load_file(folder / "init.json"), "init.json")
    check_fp_style(init, folder)
    fake_potcar(folder / "pp" / "POTCAR.Cu", "Ag")
    with pytest.raises(ParamError, match="is a POTCAR for Ag, but it is used for Cu"):
        load_run_param(str(path), folder)
