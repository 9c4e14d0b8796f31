"""One property file, three interactions (LAMMPS EAM, ASE EMT, a DeePMD model trained here, run by
LAMMPS), compared against EMT as the reference; plus the DFT route through an fp style."""

import csv
import json
import os
import subprocess

import numpy as np
import pytest

from dpgen_lite.autotest.compare import compare_table, load_result
from dpgen_lite.cli import main
from dpgen_lite.dispatch import executable

from .conftest import EXAMPLES, THREADS, emt_frames, write_param
from .test_autotest_properties import EMT_INTER, write_conf

PROPERTIES = [
    {"type": "eos", "vol_start": 0.94, "vol_end": 1.06, "vol_step": 0.03},
    {"type": "vacancy", "supercell": [2, 2, 2]},
    {"type": "gamma", "plane_miller": [1, 1, 1], "slip_direction": [1, 1, -2], "n_steps": 2},
    {"type": "phonon", "supercell_size": [2, 2, 2], "band_points": 11, "mesh": [4, 4, 4]},
    {"type": "elastic", "skip": True},
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A DeePMD model of Cu trained for 50 steps on EMT frames (dp --tf train, dp --tf freeze)."""
    folder = tmp_path_factory.mktemp("tiny_dp")
    emt_frames(8).to("deepmd/npy", str(folder / "data"))
    train = json.loads((EXAMPLES / "cu_emt" / "param.json").read_text())["default_training_param"]
    train["training"].update(numb_steps=50, disp_freq=50, save_freq=50,
                             training_data={"systems": ["data"], "batch_size": 1})
    train["learning_rate"]["decay_steps"] = 20
    (folder / "input.json").write_text(json.dumps(train))
    env = {**os.environ, **THREADS}
    subprocess.run([executable("dp"), "--tf", "train", "input.json"], cwd=folder, check=True, env=env,
                   capture_output=True)
    subprocess.run([executable("dp"), "--tf", "freeze", "-o", "graph.pb"], cwd=folder, check=True, env=env,
                   capture_output=True)
    return folder / "graph.pb"


def test_three_interactions_compared(tmp_path, tiny_model):
    write_conf(tmp_path)
    inters = [
        {"name": "eam", "type": "eam_alloy", "model": "Cu_mishin1.eam.alloy", "type_map": {"Cu": 0}},
        {"name": "emt", **EMT_INTER},
        {"name": "dp", "type": "deepmd", "model": str(tiny_model), "type_map": ["Cu"]},
    ]
    write_param(tmp_path, {"structures": ["confs/std-fcc"], "interaction": inters, "reference": "emt",
                           "properties": PROPERTIES})
    assert main(["autotest", "all", str(tmp_path / "param.json"), "--work-dir", str(tmp_path)]) == 0
    results = {}
    for name in ("eam", "emt", "dp"):
        assert (tmp_path / name / "confs" / "std-fcc" / "relaxation" / "relax_task" / "in.lammps").is_file() \
            != (name == "emt")
        results[name] = load_result(str(tmp_path / name))[1]["confs"]["confs/std-fcc"]
        assert set(results[name]) == {"relaxation", "eos_00", "vacancy_00", "gamma_00", "phonon_00"}
    # Mishin's Cu EAM: a = 3.615 Å, vacancy formation 1.27 eV (Mishin et al., PRB 63, 224106 (2001))
    assert results["eam"]["relaxation"]["a_A"] == pytest.approx(3.615, abs=2e-3)
    assert results["eam"]["vacancy_00"]["formation_energy_eV"] == pytest.approx(1.27, abs=0.03)
    assert np.isfinite(results["dp"]["eos_00"]["B0_GPa"])
    table = (tmp_path / "compare.out").read_text()
    assert "emt (ref)" in table and "dev %" in table and "vacancy E_f (eV)" in table
    v_eam, v_emt = results["eam"]["eos_00"]["V0_A3_per_atom"], results["emt"]["eos_00"]["V0_A3_per_atom"]
    assert f"{100 * (v_eam - v_emt) / v_emt:+.1f}" in table
    for folder in ("eos_00", "gamma_00", "phonon_00"):
        assert (tmp_path / "compare" / f"confs_std-fcc_{folder}.png").stat().st_size > 10000
    # the stand-alone command over the work folders, DP as the reference
    assert main(["autotest", "compare", f"x={tmp_path / 'emt'}", str(tmp_path / "dp" / "result.json"),
                 "--ref", "dp"]) == 0
    assert compare_table([("a", {"confs": {}}), ("b", {"confs": {}})], "a").count("\n") == 2
    md = (tmp_path / "compare" / "compare.md").read_text().splitlines()
    assert md[0].startswith("| structure | property | quantity | emt (ref) | eam | dev % |")
    rows = list(csv.reader((tmp_path / "compare" / "compare.csv").open()))
    assert rows[0][:5] == ["structure", "property", "quantity", "emt (ref)", "eam"] and len(rows) == len(md) - 1
    [vac] = [r for r in rows if r[2] == "vacancy E_f (eV)"]
    v_eam, v_emt = (results[n]["vacancy_00"]["formation_energy_eV"] for n in ("eam", "emt"))
    assert float(vac[4]) == pytest.approx(v_eam, abs=1e-4) and vac[5] == f"{100 * (v_eam - v_emt) / v_emt:+.1f}"

    # published numbers as the reference: Mishin's own table for his potential
    paper = {"label": "Mishin 2001", "source": "Mishin et al., PRB 63, 224106 (2001), Table I",
             "values": {"confs/std-fcc": {"relaxation": {"a (Å)": 3.615}, "vacancy_00": {"vacancy E_f (eV)": 1.27}}}}
    (tmp_path / "mishin.json").write_text(json.dumps(paper))
    out = tmp_path / "vs_paper"
    assert main(["autotest", "compare", str(tmp_path / "mishin.json"), f"eam={tmp_path / 'eam'}",
                 "--plot-dir", str(out)]) == 0
    md = (out / "compare.md").read_text()
    assert "| Mishin 2001 (ref) | eam | dev % |" in md and "Source of Mishin 2001: Mishin et al." in md
    rows = {r[2]: r for r in csv.reader((out / "compare.csv").open())}
    assert set(rows) == {"quantity", "a (Å)", "vacancy E_f (eV)"}
    assert abs(float(rows["a (Å)"][5])) < 0.1 and abs(float(rows["vacancy E_f (eV)"][5])) < 3
    (tmp_path / "bad.json").write_text(json.dumps({"label": "x", "values": {}}))
    assert main(["autotest", "compare", str(tmp_path / "bad.json"), str(tmp_path / "eam")]) == 2


def test_dft_route_through_fp_style(tmp_path):
    """fp calculators compute single points: the ``ase`` fp style with EMT stands in for DFT."""
    import ase.build
    from ase.calculators.emt import EMT
    from ase.units import GPa
    write_conf(tmp_path, ase.build.bulk("Cu", "fcc", a=3.59, cubic=True))
    static = {"relax_pos": False, "relax_shape": False, "relax_vol": False}
    write_param(tmp_path, {
        "structures": ["confs/std-fcc"],
        "interaction": {"type": "fp", "fp_style": "ase", "type_map": ["Cu"],
                        "fp_params": {"calculator": "ase.calculators.emt.EMT", "kwargs": {}}},
        "relaxation": {"cal_setting": static},
        "properties": [{"type": "eos", "vol_start": 0.96, "vol_end": 1.04, "vol_step": 0.02, "cal_setting": static}]})
    assert main(["autotest", "all", str(tmp_path / "param.json"), "--work-dir", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "result.json").read_text())["confs"]["confs/std-fcc"]
    atoms = ase.build.bulk("Cu", "fcc", a=3.59, cubic=True)
    atoms.calc = EMT()
    assert res["relaxation"]["energy_per_atom_eV"] == pytest.approx(atoms.get_potential_energy() / 4, abs=1e-8)
    assert np.array(res["relaxation"]["stress_GPa"]) == pytest.approx(atoms.get_stress(voigt=False) / GPa, abs=1e-6)
    assert len(res["eos_00"]["energy_per_atom_eV"]) == 5
