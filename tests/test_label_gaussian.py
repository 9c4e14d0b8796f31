"""fp style gaussian: input written for the molecule of a recorded g16 run, that run's log parsed,
failed and unfinished runs rejected, DP-GEN's keys checked at start (Gaussian itself cannot run here)."""

import shutil
import sys

import ase
import ase.io
import dpdata
import numpy as np
import pytest
from dargs import Argument

from dpgen_lite.label.base import get_style
from dpgen_lite.label.stage import collect_labels, write_fp_tasks
from dpgen_lite.params import ParamError, normalize
from tests.conftest import ROOT
from tests.fp_helpers import assert_check_fails, assert_fails

GAUSSIAN = ROOT / "tests" / "fixtures" / "gaussian"
HARTREE = 27.211386245988  # eV, CODATA 2018
BOHR = 0.529177210903  # Å
TYPE_MAP = ["H", "C", "O"]  # O absent from the molecule
#: the molecule and route of the recorded run (methane.gaussianlog: "Input orientation", route line)
METHANE = [("C", 1.07422, -0.06034, 0.02917), ("H", 2.16642, -0.06034, 0.02917), ("H", 0.71015, -0.92887, -0.52401),
           ("H", 0.71015, 0.85299, -0.44641), ("H", 0.71015, -0.10514, 1.05793)]
#: its forces, Hartree/Bohr, as printed in the log
FORCES = [[-0.000000623, -0.000000654, 0.000000794], [-0.000215948, -0.000000016, -0.000000010],
          [0.000072325, 0.000170842, 0.000109258], [0.000071925, -0.000178640, 0.000093176],
          [0.000072322, 0.000008469, -0.000203220]]
FP_PARAMS = {"keywords": "force b3lyp/6-31g**", "multiplicity": 1, "nproc": 28}


def style_of(tmp_path, fp_params=None, **top):
    return get_style("gaussian")({"type_map": TYPE_MAP, "fp_params": fp_params or FP_PARAMS, **top}, tmp_path)


def methane_frame() -> dpdata.System:
    """The recorded molecule as an MD frame would come: periodic 12 Å box."""
    atoms = ase.Atoms([s for s, *_ in METHANE], positions=[p for _, *p in METHANE], cell=np.eye(3) * 12.0, pbc=True)
    return dpdata.System(atoms, fmt="ase/structure", type_map=TYPE_MAP)


def task_with_output(tmp_path, log: str | None, text: str | None = None, fp_params=None):
    """A task folder with our input for the methane frame and ``output`` = a recorded log (or ``text``)."""
    style = style_of(tmp_path, fp_params)
    style.check()
    task = tmp_path / "task"
    task.mkdir()
    assert style.write_inputs(methane_frame(), task) == ["input"]
    if log is not None:
        shutil.copy(GAUSSIAN / log, task / "output")
    if text is not None:
        (task / "output").write_text(text)
    return style, task


def test_input_is_the_recorded_runs_input(tmp_path):
    """Our input for the molecule holds what the recorded run echoes: %nproc, route, charge and
    multiplicity, the atoms; no periodic TV lines (the frame is a molecule, as DP-GEN writes it)."""
    _, task = task_with_output(tmp_path, None)
    text = (task / "input").read_text()
    lines = text.splitlines()
    assert lines[0] == "%nproc=28" and lines[1] == "#force b3lyp/6-31g**" and "0 1" in lines
    assert "TV" not in text and "--link1--" not in text
    log = (GAUSSIAN / "methane.gaussianlog").read_text()
    assert " %nproc=28\n" in log and " #force b3lyp/6-31g**\n" in log and "Charge =  0 Multiplicity = 1" in log
    # read back by an independent reader (ASE's), then by dpdata's
    atoms = ase.io.read(task / "input", format="gaussian-in")
    assert atoms.get_chemical_symbols() == [s for s, *_ in METHANE]
    np.testing.assert_allclose(atoms.positions, [p for _, *p in METHANE], atol=1e-6)
    assert not atoms.pbc.any()
    back = dpdata.System(str(task / "input"), fmt="gaussian/gjf")
    np.testing.assert_allclose(back["coords"][0], [p for _, *p in METHANE], atol=1e-6)


def test_several_jobs_are_linked(tmp_path):
    params = {**FP_PARAMS, "keywords": ["opt b3lyp/6-31g**", "force b3lyp/6-31g**"], "charge": 0,
              "basis_set": "C H 0\n6-31G**\n****"}
    _, task = task_with_output(tmp_path, None, fp_params=params)
    text = (task / "input").read_text()
    assert text.count("--link1--") == 1 and "#opt b3lyp/6-31g**" in text and "#force b3lyp/6-31g**" in text
    assert "%chk=" in text and "6-31G**\n****" in text


def test_recorded_log_numbers_and_units(tmp_path):
    """The recorded g16 log: energy Hartree -> eV, forces Hartree/Bohr -> eV/Å, atoms in type_map."""
    style, task = task_with_output(tmp_path, "methane.gaussianlog")
    system = style.read_label(task)
    assert system.get_nframes() == 1 and system.nopbc
    assert system["atom_names"] == TYPE_MAP and list(system["atom_types"]) == [1, 0, 0, 0, 0]
    assert system["energies"][0] == pytest.approx(-40.5240137309 * HARTREE, rel=1e-10)
    np.testing.assert_allclose(system["forces"][0], np.array(FORCES) * HARTREE / BOHR, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(system["coords"][0], [p for _, *p in METHANE], atol=1e-6)
    assert "virials" not in system.data


def test_error_termination_fails(tmp_path):
    """Recorded run whose SCF did not converge: 'Error termination', no forces."""
    style, task = task_with_output(tmp_path, "noncoveraged.gaussianlog")
    assert_fails(style, task, "Gaussian stopped with an error.*Error termination via Lnk1e")


def test_unfinished_run_fails(tmp_path):
    """The recorded log cut before its end (a killed job): no 'Normal termination'."""
    log = (GAUSSIAN / "methane.gaussianlog").read_text()
    style, task = task_with_output(tmp_path, None, text=log[: log.index(" Normal termination")])
    assert_fails(style, task, r"did not finish: 0 of the 1 job\(s\)")


def test_linked_jobs_must_all_finish(tmp_path):
    """Two linked jobs in the input, one 'Normal termination' in the log: the second never ran."""
    params = {**FP_PARAMS, "keywords": ["opt b3lyp/6-31g**", "force b3lyp/6-31g**"]}
    style, task = task_with_output(tmp_path, "methane.gaussianlog", fp_params=params)
    assert_fails(style, task, r"1 of the 2 job\(s\)")


def test_missing_output_and_foreign_elements_fail(tmp_path):
    style, task = task_with_output(tmp_path, None)
    assert_fails(style, task, "no output")
    shutil.copy(GAUSSIAN / "methane.gaussianlog", task / "output")
    cu = get_style("gaussian")({"type_map": ["Cu"], "fp_params": FP_PARAMS}, tmp_path)
    assert_fails(cu, task, "cannot be read as a Gaussian log")


def test_labels_collected_and_failures_reported_through_the_fp_step(tmp_path):
    """write_fp_tasks / collect_labels: the good task lands in data.000, the failed one is reported."""
    style = style_of(tmp_path)
    work = tmp_path / "02.fp"
    frame = methane_frame()
    write_fp_tasks(style, [(0, frame, {"n": 0}), (0, frame, {"n": 1})], work)
    shutil.copy(GAUSSIAN / "methane.gaussianlog", work / "task.000.000000" / "output")
    shutil.copy(GAUSSIAN / "noncoveraged.gaussianlog", work / "task.000.000001" / "output")
    report = collect_labels(style, work, ratio_failed=0.5)
    assert report["labelled"] == 1 and [f["task"] for f in report["failed"]] == ["task.000.000001"]
    assert "Error termination" in report["failed"][0]["reason"]
    data = dpdata.LabeledSystem(str(work / "data.000"), fmt="deepmd/npy")
    assert data.get_nframes() == 1 and data.nopbc
    assert data["energies"][0] == pytest.approx(-40.5240137309 * HARTREE, rel=1e-10)


def test_default_command_is_dpgens():
    assert get_style("gaussian")({"type_map": TYPE_MAP, "fp_params": FP_PARAMS}, ".").default_command() == \
        "g16 < input"


@pytest.mark.parametrize("change, expected", [
    (dict(use_clusters=True, cluster_cutoff=5.0), ["use_clusters = True", "refused", "label each frame whole"]),
    (dict(fp_params={**FP_PARAMS, "keywords": "b3lyp/6-31g**"}), ["fp_params.keywords", "prints no forces",
                                                                  "'force b3lyp/6-31g**'"]),
    (dict(fp_params={"keywords": "force hf/sto-3g", "multiplicity": 1}), ["missing ['nproc']"]),
    (dict(fp_params={**FP_PARAMS, "nproc": 0}), ["fp_params.nproc = 0"]),
    (dict(fp_params={**FP_PARAMS, "multiplicity": "high"}), ["fp_params.multiplicity = 'high'", "'auto'"]),
    (dict(fp_params={**FP_PARAMS, "keywords_high_multiplicity": "force ub3lyp/6-31g**"}),
     ["keywords_high_multiplicity", "multiplicity = 1", "'auto'"]),
])
def test_bad_setup_fails_at_start(tmp_path, change, expected):
    params = {"type_map": TYPE_MAP, "fp_params": FP_PARAMS, **change}
    assert_check_fails(get_style("gaussian")(params, tmp_path), expected)


def test_auto_multiplicity_without_openbabel_fails_at_start(tmp_path, monkeypatch):
    """DP-GEN's default multiplicity 'auto' finds molecules with Open Babel: without it, say so at start."""
    monkeypatch.setitem(sys.modules, "openbabel", None)  # import openbabel -> ImportError
    params = {"keywords": "force b3lyp/6-31g**", "nproc": 4}
    assert_check_fails(style_of(tmp_path, params), ["multiplicity = 'auto'", "Open Babel", "integer"])
    assert_check_fails(style_of(tmp_path, {**params, "multiplicity": 1, "fragment_guesses": True}),
                       ["fragment_guesses = true", "Open Babel"])


def test_dpgen_keys_normalised_strictly():
    schema = Argument("param", dict, sub_fields=get_style("gaussian").args())
    data = normalize(schema, {"use_clusters": False, "cluster_cutoff": 5.0, "cluster_minify": True,
                              "fp_params": {"keywords": ["force b3lyp/6-31g**"], "nproc": 2}}, "param.json")
    assert data["fp_params"]["multiplicity"] == "auto" and data["fp_params"]["charge"] == 0
    assert data["fp_params"]["fragment_guesses"] is False and data["cluster_cutoff"] == 5.0
    with pytest.raises(ParamError, match="nprocs"):
        normalize(schema, {"fp_params": {"keywords": "force hf/sto-3g", "nproc": 2, "nprocs": 2}}, "param.json")


def test_auto_multiplicity_with_openbabel(tmp_path):
    """With Open Babel (DP-GEN's default multiplicity 'auto'): closed-shell methane is a singlet; two
    methyl radicals far apart take keywords_high_multiplicity; fragment guesses give one charge and
    multiplicity per fragment."""
    pytest.importorskip("openbabel")
    params = {"keywords": "force b3lyp/6-31g**", "nproc": 2, "keywords_high_multiplicity": "force ub3lyp/6-31g**"}
    style, task = task_with_output(tmp_path, None, fp_params=params)
    lines = (task / "input").read_text().splitlines()
    assert lines[1] == "#force b3lyp/6-31g**" and "0 1" in lines
    methyls = ase.Atoms("CH3CH3", positions=[[0, 0, 0], [1.09, 0, 0], [-0.36, 1.03, 0], [-0.36, -0.5, 0.9],
                                              [6, 0, 0], [7.09, 0, 0], [5.64, 1.03, 0], [5.64, -0.5, 0.9]],
                        cell=np.eye(3) * 12, pbc=True)
    frame = dpdata.System(methyls, fmt="ase/structure", type_map=TYPE_MAP)
    (tmp_path / "radicals").mkdir()
    style.write_inputs(frame, tmp_path / "radicals")
    assert (tmp_path / "radicals" / "input").read_text().splitlines()[1] == "#force ub3lyp/6-31g**"
    guess = style_of(tmp_path, {"keywords": "force b3lyp/6-31g**", "nproc": 2, "fragment_guesses": True})
    guess.check()
    (tmp_path / "guess").mkdir()
    guess.write_inputs(frame, tmp_path / "guess")
    text = (tmp_path / "guess" / "input").read_text()
    assert "#force b3lyp/6-31g** guess=fragment=2" in text and "\n0 3 0 2 0 2\n" in text
