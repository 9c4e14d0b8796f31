"""dpgen init_bulk: supercell, scaling, perturbation and labels, in DP-GEN's layout."""

import json
import os

import ase.io
import dpdata
import numpy as np
import pytest
from ase.calculators.emt import EMT

from dpgen_lite.cli import main
from tests.conftest import EXAMPLES, write_param


def run_init(folder, param):
    write_param(folder, param, "init.json")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        return main(["init_bulk", "init.json"])
    finally:
        os.chdir(cwd)


def test_init_bulk_emt(tmp_path):
    param = json.loads((EXAMPLES / "cu_emt" / "init.json").read_text())
    param.update(pert_numb=2, scale=[0.99, 1.01], super_cell=[1, 1, 2])
    assert run_init(tmp_path, param) == 0
    out = tmp_path / "Cu.fcc.01x01x02"
    poscars = sorted((out / "01.scale_pert" / "sys-0008").glob("scale-*/*/POSCAR"))
    assert [p.relative_to(out / "01.scale_pert" / "sys-0008").parts[0] for p in poscars] == \
        ["scale-0.990"] * 3 + ["scale-1.010"] * 3
    first = ase.io.read(poscars[0])
    assert np.allclose(first.cell.lengths(), np.array([3.61, 3.61, 7.22]) * 0.99)
    for p in poscars[1:3]:  # perturbed copies stay close to the scaled cell
        a = ase.io.read(p)
        assert np.all(np.abs(a.cell.lengths() / first.cell.lengths() - 1) <= param["pert_box"] + 1e-9)
        assert not np.allclose(a.positions, first.positions)
    data = dpdata.LabeledSystem(str(out / "02.md" / "sys-0008" / "deepmd"), fmt="deepmd/npy")
    assert data.get_nframes() == 6 and data.get_atom_names() == ["Cu"]
    # the labels are EMT's, in eV and eV/Å; virial = -stress * volume (eV)
    ref = ase.io.read(poscars[4])
    ref.calc = EMT()
    k = next(i for i in range(6) if np.allclose(data["coords"][i], ref.positions, atol=1e-5))
    assert data["energies"][k] == pytest.approx(ref.get_potential_energy(), abs=1e-6)
    assert np.allclose(data["forces"][k], ref.get_forces(), atol=1e-6)
    virial = -ref.get_stress(voigt=False) * ref.get_volume()
    assert np.allclose(data["virials"][k], virial, atol=1e-5)


def test_init_bulk_bad_cell_type(tmp_path, capsys):
    param = json.loads((EXAMPLES / "cu_emt" / "init.json").read_text())
    param["cell_type"] = "bct"
    assert run_init(tmp_path, param) == 2
    assert "cell_type = 'bct'" in capsys.readouterr().err
    assert not list(tmp_path.glob("Cu.*"))


def test_init_bulk_cp2k_through_dispatcher(tmp_path):
    """Real DFT labels: CP2K on two 4-atom Al cells, run as dpdispatcher tasks, read by dpdata."""
    param = {
        "type_map": ["Al"], "elements": ["Al"], "cell_type": "fcc", "latt": 4.05, "super_cell": [1, 1, 1],
        "scale": [1.0], "pert_numb": 1, "pert_box": 0.0, "pert_atom": 0.05, "fp_style": "cp2k",
        "fp_params": {"cutoff": 200, "rel_cutoff": 40, "kpoints": [2, 2, 2]},
    }
    assert run_init(tmp_path, param) == 0
    data = dpdata.LabeledSystem(str(tmp_path / "Al.fcc.01x01x01/02.md/sys-0004/deepmd"), fmt="deepmd/npy")
    assert data.get_nframes() == 2
    assert np.all(np.abs(data["energies"] / 4 + 56.2) < 0.5)     # PBE/GTH Al, eV/atom
    assert np.abs(data["forces"][0]).max() < 1e-3                  # perfect fcc: no force
    assert np.abs(data["forces"][1]).max() > 0.01                  # perturbed: forces
    assert np.allclose(data["forces"][1].sum(axis=0), 0, atol=5e-3)
    assert np.allclose(data["virials"], data["virials"].transpose(0, 2, 1), atol=1e-3)
