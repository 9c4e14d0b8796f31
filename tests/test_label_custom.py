"""fp style custom: the frame written in a dpdata format, a program of the user's run on it
(tests/custom_oracle.py: ASE's EMT), its output read back in another dpdata format; and the
quickstart loop run with it through machine.json's fp.command."""

import json
import subprocess
import sys

import ase
import ase.io
import dpdata
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from dargs import Argument

from dpgen_lite.cli import load_inputs
from dpgen_lite.context import Context
from dpgen_lite.label.base import get_style
from dpgen_lite.label.stage import run_fp_tasks, write_fp_tasks
from dpgen_lite.params import ParamError, normalize
from dpgen_lite.scheduler import STEPS
from tests.conftest import ROOT, write_param
from tests.fp_helpers import TYPE_MAP, assert_check_fails, assert_fails, grouped, write_task
from tests.test_loop import tiny

ORACLE = ROOT / "tests" / "custom_oracle.py"
FP_PARAMS = {"input_fmt": "vasp/poscar", "input_fn": "POSCAR", "output_fmt": "extxyz", "output_fn": "label.xyz"}


def style_of(tmp_path, fp_params=None, type_map=TYPE_MAP):
    return get_style("custom")({"type_map": type_map, "fp_params": fp_params or FP_PARAMS}, tmp_path)


def run_oracle(task, *args):
    subprocess.run([sys.executable, str(ORACLE), *args], cwd=task, check=True, capture_output=True)


def emt_reference(symbols, positions, cell):
    """Energy (eV), forces (eV/Å) and virial (eV) of EMT for one periodic structure."""
    atoms = ase.Atoms(symbols, positions=positions, cell=cell, pbc=True)
    atoms.calc = EMT()
    return atoms.get_potential_energy(), atoms.get_forces(), -atoms.get_stress(voigt=False) * atoms.get_volume()


def test_round_trip_through_a_users_program(tmp_path):
    """POSCAR written by dpdata, labelled by the oracle (EMT), extxyz read back: EMT's numbers
    for the frame's atoms (grouped by element, as POSCAR orders them), in type_map."""
    style = style_of(tmp_path)
    assert style.output_files == ["label.xyz"]
    frame, task, files = write_task(style, tmp_path)
    assert files == ["POSCAR"]
    symbols, positions = grouped(frame)
    written = ase.io.read(task / "POSCAR", format="vasp")
    assert written.get_chemical_symbols() == symbols
    np.testing.assert_allclose(written.positions, positions, atol=1e-8)
    run_oracle(task)
    system = style.read_label(task)
    assert system.get_nframes() == 1 and system["atom_names"] == TYPE_MAP
    assert [TYPE_MAP[t] for t in system["atom_types"]] == symbols
    energy, forces, virial = emt_reference(symbols, positions, frame["cells"][0])
    assert system["energies"][0] == pytest.approx(energy, abs=1e-8)
    np.testing.assert_allclose(system["forces"][0], forces, atol=1e-8)
    np.testing.assert_allclose(system["virials"][0], virial, atol=1e-7)
    np.testing.assert_allclose(system["cells"][0], frame["cells"][0], atol=1e-8)


def test_other_formats_and_names(tmp_path):
    """Input as LAMMPS data (types in type_map order), output as an ASE trajectory."""
    params = {"input_fmt": "lammps/lmp", "input_fn": "conf.lmp", "output_fmt": "ase/traj", "output_fn": "out.traj"}
    style = style_of(tmp_path, params, type_map=["Cu"])
    style.check()
    cu = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
    cu.rattle(0.05, seed=5)
    frame = dpdata.System(cu, fmt="ase/structure", type_map=["Cu"])
    task = tmp_path / "t"
    task.mkdir()
    assert style.write_inputs(frame, task) == ["conf.lmp"]
    back = ase.io.read(task / "conf.lmp", format="lammps-data", atom_style="atomic")
    back.set_chemical_symbols(["Cu"] * len(back))
    back.calc = EMT()
    back.get_potential_energy()
    ase.io.write(task / "out.traj", back)  # what a program writing ASE trajectories would leave
    system = style.read_label(task)
    energy, forces, _ = emt_reference(cu.get_chemical_symbols(), frame["coords"][0], frame["cells"][0])
    assert system["energies"][0] == pytest.approx(energy, abs=1e-6)
    np.testing.assert_allclose(system["forces"][0], forces, atol=1e-6)


def test_bad_outputs_fail(tmp_path):
    style = style_of(tmp_path)
    _, task, _ = write_task(style, tmp_path)
    assert_fails(style, task, "no label.xyz")
    (task / "label.xyz").write_text("this is not extended xyz\n")
    assert_fails(style, task, "label.xyz cannot be read as dpdata format 'extxyz'")
    run_oracle(task)
    text = (task / "label.xyz").read_text().splitlines()
    text[1] = text[1].replace("energy=", "energy=nan #")
    (task / "label.xyz").write_text("\n".join(text) + "\n")
    assert_fails(style, task, "non-finite energies")
    run_oracle(task)
    assert_fails(style_of(tmp_path, type_map=["Cu"]), task, "cannot be read")  # Al is not in type_map


def test_no_command_says_where_to_give_it(tmp_path):
    """Without machine.json's fp.command, the fp step stops with a message naming it."""
    style = style_of(tmp_path)
    frame, _, _ = write_task(style, tmp_path)
    write_fp_tasks(style, [(0, frame, {})], tmp_path / "02.fp")
    ctx = Context({"type_map": TYPE_MAP, "fp_style": "custom", "fp_params": FP_PARAMS}, {}, tmp_path)
    with pytest.raises(ParamError, match=r"fp\.command in machine\.json") as err:
        run_fp_tasks(ctx, "02.fp")
    assert "'POSCAR'" in str(err.value) and "'label.xyz'" in str(err.value)


@pytest.mark.parametrize("fp_params, expected", [
    ({"input_fmt": "vasp/poscar", "input_fn": "POSCAR"}, ["missing ['output_fmt', 'output_fn']"]),
    ({**FP_PARAMS, "input_fmt": "poscar2"}, ["fp_params.input_fmt = 'poscar2'", "cannot write", "vasp/poscar"]),
    ({**FP_PARAMS, "output_fmt": "vasp/poscar"}, ["fp_params.output_fmt = 'vasp/poscar'", "cannot read labels",
                                                 "vasp/outcar"]),
    ({**FP_PARAMS, "output_fn": "../label.xyz"}, ["fp_params.output_fn = '../label.xyz'", "inside the task folder"]),
    ({**FP_PARAMS, "output_fn": "POSCAR"}, ["input_fn = fp_params.output_fn = 'POSCAR'"]),
])
def test_bad_setup_fails_at_start(tmp_path, fp_params, expected):
    assert_check_fails(style_of(tmp_path, fp_params), expected)


def test_keys_normalised_strictly():
    schema = Argument("param", dict, sub_fields=get_style("custom").args())
    assert normalize(schema, {"fp_params": FP_PARAMS}, "param.json")["fp_params"] == FP_PARAMS
    with pytest.raises(ParamError, match="output_fn"):
        normalize(schema, {"fp_params": {k: v for k, v in FP_PARAMS.items() if k != "output_fn"}}, "param.json")
    with pytest.raises(ParamError, match="input_format"):
        normalize(schema, {"fp_params": {**FP_PARAMS, "input_format": "xyz"}}, "param.json")


def test_quickstart_iteration_labels_with_a_custom_command(cu_run, monkeypatch):
    """Iteration 0 of the quickstart (examples/cu_emt, shrunk), every step of the loop, with fp_style
    custom and machine.json's fp.command running the oracle: param.json and machine.json validated
    as `dpgen run` does, then train, explore, select, label.  Every chosen frame is labelled with
    EMT's numbers.  (The loop's next training is left out: it adds a minute and nothing here.)"""
    folder, param = cu_run
    param = tiny(param, n_jobs=1)
    param.update(fp_style="custom", fp_params=FP_PARAMS, fp_task_max=3)
    write_param(folder, param)
    machine = {"fp": {"command": f"{sys.executable} {ORACLE} POSCAR label.xyz",
                      "machine": {"batch_type": "Shell", "context_type": "LazyLocalContext", "local_root": "./"},
                      "resources": {"number_node": 1, "cpu_per_node": 1, "gpu_per_node": 0, "queue_name": "",
                                    "group_size": 3},
                      "check_interval": 1}}
    write_param(folder, machine, "machine.json")
    monkeypatch.chdir(folder)
    param, mdata, _ = load_inputs("run", str(folder / "param.json"), str(folder / "machine.json"), folder)
    ctx = Context(param, mdata, folder)
    for step in STEPS:
        step(ctx, 0)
    fp = folder / "iter.000000" / "02.fp"
    report = json.loads((fp / "fp_report.json").read_text())
    assert report["tasks"] == 3 and report["labelled"] == 3 and report["failed"] == []
    tasks = sorted(fp.glob("task.000.*"))
    assert [json.loads((t / "fp_task.json").read_text())["forward_files"] for t in tasks] == [["POSCAR"]] * 3
    assert all((t / "label.xyz").is_file() for t in tasks)
    data = dpdata.LabeledSystem(str(fp / "data.000"), fmt="deepmd/npy")
    assert data.get_nframes() == 3 and data["atom_names"] == ["Cu"]
    for task in tasks:  # each task's input frame, labelled here by EMT, is in data.000 with the same numbers
        frame = ase.io.read(task / "POSCAR", format="vasp")
        k = next(i for i in range(3) if np.allclose(data["coords"][i], frame.positions, atol=1e-6))
        energy, forces, virial = emt_reference(frame.get_chemical_symbols(), frame.positions, frame.cell.array)
        assert data["energies"][k] == pytest.approx(energy, abs=1e-6)
        np.testing.assert_allclose(data["forces"][k], forces, atol=1e-6)
        np.testing.assert_allclose(data["virials"][k], virial, atol=1e-5)


def test_no_command_is_refused_before_any_work(cu_run, capsys):
    """`dpgen run` with fp_style custom and no machine.json: refused at start, nothing written."""
    import os

    from dpgen_lite.cli import main
    from tests.conftest import write_param
    folder, param = cu_run
    param.update(fp_style="custom", fp_params=FP_PARAMS)
    write_param(folder, param)
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        assert main(["run", "param.json"]) == 2
    finally:
        os.chdir(cwd)
    assert "set fp.command in machine.json" in capsys.readouterr().err
    assert not (folder / "record.dpgen").exists() and not list(folder.glob("iter.*"))
