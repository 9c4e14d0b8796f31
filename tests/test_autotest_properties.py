"""Each autotest property of EMT Cu (ASE calculator, run through dpdispatcher) against an independent
route computed here with ASE / phonopy directly."""

import json

import ase.build
import numpy as np
import pytest
from ase.calculators.emt import EMT
from ase.constraints import FixCartesian
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS

from dpgen_lite.autotest.units import EV_A2_TO_J_M2, EV_A3_TO_GPA
from dpgen_lite.cli import main

from .conftest import write_param

EMT_INTER = {"type": "ase", "calculator": "ase.calculators.emt.EMT", "type_map": ["Cu"]}
PROPERTIES = [
    {"type": "eos", "vol_start": 0.94, "vol_end": 1.06, "vol_step": 0.03},
    {"type": "elastic", "n_deform": 2, "norm_deform": 0.005, "shear_deform": 0.005},
    {"type": "vacancy", "supercell": [2, 2, 2]},
    {"type": "interstitial", "supercell": [2, 2, 2], "sites": ["octahedral"]},
    {"type": "surface", "miller": [[1, 1, 1]], "min_slab_size": 8, "min_vacuum_size": 8},
    {"type": "gamma", "plane_miller": [1, 1, 1], "slip_direction": [1, 1, -2], "n_steps": 3,
     "supercell_size": [1, 1, 2]},
    {"type": "phonon", "supercell_size": [2, 2, 2], "band_points": 21, "mesh": [6, 6, 6]},
]


def write_conf(folder, atoms=None, name="std-fcc"):
    """``folder/confs/<name>/POSCAR``: conventional fcc Cu (a = 3.6 Å) unless ``atoms`` given."""
    conf = folder / "confs" / name
    conf.mkdir(parents=True)
    (atoms or ase.build.bulk("Cu", "fcc", a=3.6, cubic=True)).write(conf / "POSCAR", format="vasp")
    return conf


@pytest.fixture(scope="module")
def emt_run(tmp_path_factory):
    """``dpgen autotest all`` of every property with EMT; returns (work folder, result.json)."""
    work = tmp_path_factory.mktemp("autotest_emt")
    write_conf(work)
    write_param(work, {"structures": ["confs/std-*"], "interaction": EMT_INTER,
                       "relaxation": {"cal_setting": {"fmax": 1e-5}}, "properties": PROPERTIES})
    assert main(["autotest", "all", str(work / "param.json"), "--work-dir", str(work)]) == 0
    return work, json.loads((work / "result.json").read_text())["confs"]["confs/std-fcc"]


def relaxed_bulk(res):
    """EMT Cu at the relaxed cell of the run, with the EMT calculator attached."""
    atoms = ase.build.bulk("Cu", "fcc", a=res["relaxation"]["a_A"], cubic=True)
    atoms.calc = EMT()
    return atoms


def relax(atoms, fmax=1e-4, mask=None, height=False):
    """Relax positions with BFGS (frozen Cartesian axes ``mask``; ``height``: the cell's zz strain
    too); return the energy, eV."""
    atoms.calc = EMT()
    if mask is not None:
        atoms.set_constraint(FixCartesian(range(len(atoms)), mask=mask))
    BFGS(FrechetCellFilter(atoms, mask=[0, 0, 1, 0, 0, 0]) if height else atoms, logfile=None).run(fmax=fmax, steps=2000)
    return atoms.get_potential_energy()


def test_layout_and_outputs(emt_run):
    work, res = emt_run
    conf = work / "confs" / "std-fcc"
    assert (conf / "relaxation" / "relax_task" / "CONTCAR").is_file()
    for folder in ("eos_00", "elastic_00", "vacancy_00", "interstitial_00", "surface_00", "gamma_00", "phonon_00"):
        assert (conf / folder / "task.000000" / "result_task.json").is_file()
        assert (conf / folder / "result.out").read_text().strip()
        assert json.loads((conf / folder / "result.json").read_text())["type"] == folder[:-3]
    assert "Elastic constants" in (work / "result.out").read_text()
    assert abs(np.array(res["relaxation"]["stress_GPa"])).max() < 0.05


def test_eos_against_direct_scan(emt_run):
    _, res = emt_run
    e0 = relaxed_bulk(res)
    cell0 = e0.cell.array.copy()
    scales = np.linspace(0.97, 1.03, 121)
    energies = []
    for s in scales:
        e0.set_cell(cell0 * s, scale_atoms=True)
        energies.append(e0.get_potential_energy() / len(e0))
    k = int(np.argmin(energies))
    v_min = np.linalg.det(cell0) * scales[k] ** 3 / 4
    assert res["eos_00"]["V0_A3_per_atom"] == pytest.approx(v_min, rel=2e-3)
    assert res["eos_00"]["E0_eV_per_atom"] == pytest.approx(energies[k], abs=2e-5)
    # curvature of the scan at the minimum: B = V d2E/dV2
    vols = np.linalg.det(cell0) * scales ** 3 / 4
    fit = np.polyfit(vols[k - 10:k + 11], energies[k - 10:k + 11], 2)
    assert res["eos_00"]["B0_GPa"] == pytest.approx(2 * fit[0] * v_min * EV_A3_TO_GPA, rel=0.02)
    # the same Birch-Murnaghan fit as pymatgen's of the same points
    from pymatgen.analysis.eos import EOS
    pmg = EOS("birch_murnaghan").fit(res["eos_00"]["volume_per_atom_A3"], res["eos_00"]["energy_per_atom_eV"])
    assert [res["eos_00"][k] for k in ("E0_eV_per_atom", "V0_A3_per_atom", "B0_GPa", "B0_prime")] == pytest.approx(
        [pmg.e0, pmg.v0, pmg.b0 * EV_A3_TO_GPA, pmg.b1], rel=1e-8)


def test_elastic_against_finite_differences(emt_run):
    _, res = emt_run
    atoms = relaxed_bulk(res)
    cell0 = atoms.cell.array.copy()
    eps = 1e-4

    def stress(strain):
        atoms.set_cell(cell0 @ (np.eye(3) + strain).T, scale_atoms=True)
        return atoms.get_stress(voigt=False) * EV_A3_TO_GPA

    exx = np.zeros((3, 3))
    exx[0, 0] = eps
    dsig = (stress(exx) - stress(-exx)) / (2 * eps)
    eyz = np.zeros((3, 3))
    eyz[1, 2] = eyz[2, 1] = eps
    c44 = (stress(eyz) - stress(-eyz))[1, 2] / (2 * 2 * eps)  # engineering shear strain 2 eps
    c = np.array(res["elastic_00"]["C_GPa"])
    assert c[0, 0] == pytest.approx(dsig[0, 0], rel=0.01)
    assert c[0, 1] == pytest.approx(dsig[1, 1], rel=0.01)
    assert c[3, 3] == pytest.approx(c44, rel=0.01)
    assert c[2, 2] == pytest.approx(c[0, 0], rel=1e-3) and abs(c[0, 3]) < 0.5
    el = res["elastic_00"]
    b_voigt = (c[0, 0] + 2 * c[0, 1]) / 3  # cubic: B_V = B_R = (C11 + 2 C12) / 3
    assert el["B_voigt_GPa"] == pytest.approx(b_voigt, rel=1e-6) and el["B_reuss_GPa"] == pytest.approx(b_voigt, rel=1e-6)
    assert el["G_voigt_GPa"] == pytest.approx((c[0, 0] - c[0, 1] + 3 * c[3, 3]) / 5, rel=1e-6)
    k, g = el["B_hill_GPa"], el["G_hill_GPa"]
    assert el["E_hill_GPa"] == pytest.approx(9 * k * g / (3 * k + g)) and 0 < el["nu_hill"] < 0.5


def test_vacancy_against_hand_built_cell(emt_run):
    _, res = emt_run
    bulk = relaxed_bulk(res)
    e0 = bulk.get_potential_energy() / len(bulk)
    cell = bulk.repeat(2)
    del cell[0]
    e_f = relax(cell) - len(cell) * e0
    assert res["vacancy_00"]["formation_energy_eV"] == pytest.approx(e_f, abs=2e-3)


def test_interstitial_against_hand_built_cell(emt_run):
    _, res = emt_run
    bulk = relaxed_bulk(res)
    e0 = bulk.get_potential_energy() / len(bulk)
    a = res["relaxation"]["a_A"]
    cell = bulk.repeat(2)
    cell.append("Cu")
    cell.positions[-1] = [a / 2, a / 2, a / 2]  # octahedral site
    e_f = relax(cell) - len(cell) * e0
    [row] = res["interstitial_00"]["interstitials"]
    assert row["site"] == "octahedral" and row["natoms"] == 33
    assert row["formation_energy_eV"] == pytest.approx(e_f, abs=5e-3)


def test_surface_against_hand_built_slab(emt_run):
    _, res = emt_run
    [row] = res["surface_00"]["surfaces"]
    bulk = relaxed_bulk(res)
    e0 = bulk.get_potential_energy() / len(bulk)
    layers = round(row["area_A2"] / (res["relaxation"]["a_A"] ** 2 * np.sqrt(3) / 4))  # atoms per layer
    slab = ase.build.fcc111("Cu", size=(1, 1, row["natoms"] // layers), a=res["relaxation"]["a_A"], vacuum=6)
    area = np.linalg.norm(np.cross(slab.cell[0], slab.cell[1]))
    gamma = (relax(slab, mask=None) - len(slab) * e0) / (2 * area) * EV_A2_TO_J_M2
    assert row["surface_energy_J_m2"] == pytest.approx(gamma, rel=0.01)


@pytest.mark.parametrize("lattice", ["fcc", "bcc", "hcp"])
def test_terminations_are_pymatgens_primitive_slabs(lattice):
    """Every plane up to index 2: the slabs matched unreduced and reduced afterwards are
    pymatgen's own ``get_slabs()`` with its primitive reduction, termination by termination: the
    same shift, lattice (1e-8 Å) and sites (1e-6 Å)."""
    from pymatgen.core.surface import SlabGenerator, get_symmetrically_distinct_miller_indices

    from dpgen_lite.autotest.properties.surface import bulk_structure, terminations
    atoms = ase.build.bulk("Cu", lattice, **{"fcc": {"cubic": True}, "bcc": {"a": 2.87, "cubic": True},
                                             "hcp": {"a": 2.55, "c": 4.16}}[lattice])
    structure = bulk_structure(atoms)
    for hkl in get_symmetrically_distinct_miller_indices(structure, 2):
        ours = terminations(structure, hkl, 10, 11)
        theirs = SlabGenerator(structure, hkl, 10, 11, center_slab=False,
                               max_normal_search=max(abs(x) for x in hkl)).get_slabs()
        assert [c.shift for c in ours] == [c.shift for c in theirs], hkl
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a.lattice.matrix, b.lattice.matrix, atol=1e-8, err_msg=str(hkl))
            distances = b.lattice.get_all_distances(a.frac_coords, b.frac_coords)
            assert len(a) == len(b) and distances.min(axis=1).max() < 1e-6, hkl


def test_gamma_line_against_hand_built_fault(emt_run):
    _, res = emt_run
    g = res["gamma_00"]
    assert g["gamma_J_m2"][0] == 0 and g["fraction"] == [0, 1 / 3, 2 / 3, 1]
    # the fault at d = 1/3 |[11-2]| a is the intrinsic... no: d = a sqrt(6)/3 = 2 partials; build the
    # same tilted cell by hand with ASE's FaceCenteredCubic and relax along z only, the height included
    from ase.lattice.cubic import FaceCenteredCubic
    a = res["relaxation"]["a_A"]
    cell = FaceCenteredCubic("Cu", directions=[[1, 1, -2], [-1, 1, 0], [1, 1, 1]], latticeconstant=a,
                             size=(1, 1, 2))
    e_ref = relax(cell.copy(), mask=[True, True, False], height=True)
    tilted = cell.copy()
    c = tilted.cell.array.copy()
    c[2, 0] += a * np.sqrt(6) / 3
    tilted.set_cell(c, scale_atoms=False)
    area = np.linalg.norm(np.cross(cell.cell[0], cell.cell[1]))
    gamma = (relax(tilted, mask=[True, True, False], height=True) - e_ref) / area * EV_A2_TO_J_M2
    assert g["gamma_J_m2"][1] == pytest.approx(gamma, rel=0.02, abs=2e-3)


def test_phonon_against_sum_rule_and_phonopy(emt_run):
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms
    _, res = emt_run
    ph = res["phonon_00"]
    assert np.abs(ph["gamma_frequencies_THz"][:3]).max() < 0.05  # acoustic sum rule
    assert len(ph["gamma_frequencies_THz"]) == 3  # phonopy's primitive cell: one atom
    bulk = relaxed_bulk(res)
    unit = PhonopyAtoms(symbols=bulk.get_chemical_symbols(), cell=bulk.cell.array,
                        scaled_positions=bulk.get_scaled_positions())
    phonon = Phonopy(unit, supercell_matrix=np.diag([2, 2, 2]), primitive_matrix="auto")
    phonon.generate_displacements(distance=0.01)
    forces = []
    for sc in phonon.supercells_with_displacements:
        atoms = ase.Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
        atoms.calc = EMT()
        forces.append(atoms.get_forces())
    phonon.forces = forces
    phonon.produce_force_constants()
    phonon.run_qpoints(ph["band_qpoints"])
    direct = phonon.qpoints.frequencies
    assert np.abs(direct - np.array(ph["band_frequencies_THz"])).max() < 0.02
    assert ph["band_labels"][0] == "G" and max(ph["dos_states_per_THz"]) > 0


def test_stacking_faults_read_off_a_sampled_line():
    """A smooth γ-line with a barrier and a stable fault, sampled at 11 and 21 points: the read-off
    (three-point parabola) against the extrema of the function on a dense grid; a one-hump line
    has no stable fault."""
    from dpgen_lite.autotest.properties.gamma import stacking_faults

    def line(x):
        return 0.2 * np.sin(2 * np.pi * x) ** 2 + 0.08 * np.sin(np.pi * x) ** 2  # J/m²

    dense = np.linspace(0, 1, 100001)
    y = line(dense)
    first_min = next(i for i in range(1, len(y) - 1) if y[i - 1] > y[i] <= y[i + 1])
    us_true, sf_true = y[:first_min].max(), y[first_min]
    for n in (10, 20):
        x = np.linspace(0, 1, n + 1)
        sf = stacking_faults(x.tolist(), line(x).tolist())
        assert sf["unstable_J_m2"] == pytest.approx(us_true, rel=0.03)
        assert sf["stable_J_m2"] == pytest.approx(sf_true, rel=0.03)
        assert sf["stable_at"] == pytest.approx(dense[first_min], abs=0.02)
    hump = stacking_faults([0, 0.25, 0.5, 0.75, 1], [0, 0.1, 0.2, 0.1, 0])
    assert hump["stable_J_m2"] is None and hump["unstable_J_m2"] == pytest.approx(0.2) and hump["unstable_at"] == pytest.approx(0.5)
