"""hcp: surfaces on four-index Miller-Bravais planes, every termination computed and the lowest
reported, and the elastic set with c/a; checked against slabs and strained cells built by hand with ASE (EMT, hcp Cu: a metastable phase, but EMT defines
its energy, and the check needs only one route against another)."""

import json

import ase.build
import ase.io
import numpy as np
import pytest
from ase import units
from ase.calculators.emt import EMT
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS

from dpgen_lite.autotest.units import EV_A2_TO_J_M2
from dpgen_lite.cli import main

from .conftest import write_param
from .test_autotest_properties import EMT_INTER, write_conf

HCP = ase.build.bulk("Cu", "hcp", a=2.55, c=4.16)


def gamma_s(slab, e0: float) -> float:
    """Unrelaxed surface energy of ``slab`` (EMT), J/m²."""
    slab.calc = EMT()
    area = np.linalg.norm(np.cross(slab.cell[0], slab.cell[1]))
    return (slab.get_potential_energy() - len(slab) * e0) / (2 * area) * EV_A2_TO_J_M2


def test_hcp_planes_every_termination_lowest_reported(tmp_path):
    """Basal: one termination, equal to ASE's hcp0001 slab.  Prism (10-10): two, the wide-gap cut
    (ASE's hcp10m10) about a quarter above the narrow-gap one (ASE's slab with its two outer
    layers removed); the plane's value is the lower."""
    conf = write_conf(tmp_path, HCP, "std-hcp")
    surface = {"type": "surface", "miller": [[0, 0, 0, 1], [1, 0, -1, 0]], "min_slab_size": 10,
               "min_vacuum_size": 10, "cal_setting": {"relax_pos": False}}
    write_param(tmp_path, {"structures": ["confs/std-hcp"], "interaction": EMT_INTER,
                           "relaxation": {"cal_setting": {"fmax": 1e-5}}, "properties": [surface]})
    assert main(["autotest", "all", str(tmp_path / "param.json"), "--work-dir", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "result.json").read_text())["confs"]["confs/std-hcp"]["surface_00"]
    basal, prism = res["surfaces"]
    assert basal["miller"] == [0, 0, 0, 1] and prism["miller"] == [1, 0, -1, 0]
    assert len(basal["terminations"]) == 1 and len(prism["terminations"]) == 2

    bulk = ase.io.read(conf / "relaxation" / "relax_task" / "CONTCAR", format="vasp")
    a, c = bulk.cell.cellpar()[0], bulk.cell.cellpar()[2]
    bulk.calc = EMT()
    e0 = bulk.get_potential_energy() / len(bulk)
    assert basal["surface_energy_J_m2"] == pytest.approx(
        gamma_s(ase.build.hcp0001("Cu", size=(1, 1, 8), a=a, c=c, vacuum=6), e0), rel=1e-3)
    wide = ase.build.hcp10m10("Cu", size=(1, 2, 8), a=a, c=c, vacuum=6)
    z = wide.positions[:, 2].round(3)
    narrow = wide[[z.min() < zi < z.max() for zi in z]]  # the outer layers off: the other cut
    energies = sorted(t["surface_energy_J_m2"] for t in prism["terminations"])
    assert energies == pytest.approx([gamma_s(narrow, e0), gamma_s(wide, e0)], rel=1e-3)
    assert energies[1] > 1.15 * energies[0]
    assert prism["surface_energy_J_m2"] == energies[0]
    out = (tmp_path / "confs" / "std-hcp" / "surface_00" / "result.out").read_text()
    assert "10-10" in out and "0001" in out


@pytest.mark.parametrize("miller, message", [
    ([1, 0, 0], "need a list of 4 integers (the lattice is hexagonal: four Miller-Bravais indices"),
    ([1, 0, 0, 0], "i must be -(h + k) = -1"),
])
def test_hcp_plane_in_three_indices_is_refused(tmp_path, capsys, miller, message):
    write_conf(tmp_path, HCP, "std-hcp")
    write_param(tmp_path, {"structures": ["confs/std-hcp"], "interaction": EMT_INTER,
                           "properties": [{"type": "surface", "miller": [miller]}]})
    assert main(["autotest", "all", str(tmp_path / "param.json"), "--work-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"properties[surface].miller[0] = {miller}" in err and message in err
    assert sorted(p.name for p in (tmp_path / "confs" / "std-hcp").iterdir()) == ["POSCAR"]


def test_hcp_elastic_set_against_finite_differences_of_stress(tmp_path):
    """C11, C12, C13, C33, C44 (and C66 = (C11 - C12) / 2) of hcp Cu against central differences of
    the stress of strained cells relaxed here with ASE (atoms relaxed, cell fixed); c/a against a
    cell relaxation done here."""
    write_conf(tmp_path, ase.build.bulk("Cu", "hcp", a=2.50, c=4.30), "std-hcp")  # c/a 1.72, relaxed to ~1.63
    write_param(tmp_path, {"structures": ["confs/std-hcp"], "interaction": EMT_INTER,
                           "relaxation": {"cal_setting": {"fmax": 1e-5}},
                           "properties": [{"type": "elastic", "n_deform": 2, "norm_deform": 0.005,
                                           "shear_deform": 0.005, "cal_setting": {"fmax": 1e-5}}]})
    assert main(["autotest", "all", str(tmp_path / "param.json"), "--work-dir", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "result.json").read_text())["confs"]["confs/std-hcp"]
    relaxed = ase.io.read(tmp_path / "confs" / "std-hcp" / "relaxation" / "relax_task" / "CONTCAR", format="vasp")
    a, c = relaxed.cell.cellpar()[0], relaxed.cell.cellpar()[2]
    assert res["relaxation"]["c_over_a"] == pytest.approx(c / a, rel=1e-6)
    alone = ase.build.bulk("Cu", "hcp", a=2.50, c=4.30)
    alone.calc = EMT()
    BFGS(FrechetCellFilter(alone), logfile=None).run(fmax=1e-5, steps=1000)
    assert c / a == pytest.approx(alone.cell.cellpar()[2] / alone.cell.cellpar()[0], abs=1e-3)

    def stress_voigt(strain: np.ndarray) -> np.ndarray:
        atoms = relaxed.copy()
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + strain).T, scale_atoms=True)
        atoms.calc = EMT()
        BFGS(atoms, logfile=None).run(fmax=1e-5, steps=500)
        return atoms.get_stress(voigt=True) / units.GPa  # ASE: tensile positive; GPa

    eps = 0.002
    cij = np.zeros((6, 6))
    for j, (p, q) in enumerate([(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]):
        strain = np.zeros((3, 3))
        strain[p, q] = strain[q, p] = eps / (1 if p == q else 2)  # engineering shear strain eps
        cij[:, j] = (stress_voigt(strain) - stress_voigt(-strain)) / (2 * eps)
    got = np.array(res["elastic_00"]["C_GPa"])
    for i, j in ((0, 0), (0, 1), (0, 2), (2, 2), (3, 3), (5, 5)):
        assert got[i, j] == pytest.approx(cij[i, j], rel=0.02, abs=0.5), (i, j)
    assert got[5, 5] == pytest.approx((got[0, 0] - got[0, 1]) / 2, rel=0.02)


def hcp_interstitial(**keys):
    from dpgen_lite.autotest.properties.interstitial import Interstitial
    from dpgen_lite.autotest.schema import property_arg
    from dpgen_lite.params import normalize
    return Interstitial(normalize(property_arg(Interstitial), {"type": "interstitial", **keys}, "x"))


def test_hcp_interstitial_sites_are_told_apart():
    """APEX's eight hcp sites: each starting structure, rattled by 0.03 Å and shifted as a whole by
    0.4 Å, or moved by a lattice vector (an equivalent placement), is recognised as itself and as
    no other site."""
    from dpgen_lite.autotest.properties.interstitial import nearest_template

    from dpgen_lite.autotest.properties.interstitial import conventional

    made = {m["site"]: a for a, m in hcp_interstitial(supercell=[2, 2, 2]).make(HCP, None)}
    assert sorted(made) == sorted(["O", "BO", "T", "BT", "C", "BC", "S", "BS"])
    assert all(len(a) == 17 for a in made.values())
    host = conventional(HCP)[1].repeat(2)
    a1 = host.cell.array[0] / 2
    for site, atoms in made.items():
        moved = atoms.copy()
        moved.rattle(0.03, seed=1)
        moved.translate([0.4, -0.2, 0.3])
        assert nearest_template(moved, made, host)[0] == site
        # the same defect one lattice vector along: an equivalent placement, the same site
        shifted = atoms.copy()
        shifted.translate(a1)
        shifted.wrap()
        assert nearest_template(shifted, made, host) == (site, pytest.approx(0, abs=1e-6))


def test_hcp_interstitials_relaxed_with_the_site_they_reach(tmp_path):
    """Eight sites of hcp Cu (EMT) relaxed; the octahedral formation energy against a relaxation
    done here with ASE; every row names the site its relaxed structure is nearest to."""
    write_conf(tmp_path, HCP, "std-hcp")
    write_param(tmp_path, {"structures": ["confs/std-hcp"], "interaction": EMT_INTER,
                           "relaxation": {"cal_setting": {"fmax": 1e-5}},
                           "properties": [{"type": "interstitial", "supercell": [2, 2, 2],
                                           "cal_setting": {"fmax": 1e-4}}]})
    assert main(["autotest", "all", str(tmp_path / "param.json"), "--work-dir", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "result.json").read_text())["confs"]["confs/std-hcp"]["interstitial_00"]
    rows = {r["site"]: r for r in rows["interstitials"]}
    assert len(rows) == 8 and all(r["relaxed_site"] in rows for r in rows.values())
    # relaxed structures that are the same configuration have the same energy and the same site
    assert rows["BC"]["formation_energy_eV"] == pytest.approx(rows["BO"]["formation_energy_eV"], abs=1e-4)
    assert rows["BC"]["relaxed_site"] == rows["BO"]["relaxed_site"] == "BO"
    assert rows["BC"]["relaxed_site_distance_A"] == pytest.approx(rows["BO"]["relaxed_site_distance_A"], abs=1e-3)
    relaxed = ase.io.read(tmp_path / "confs" / "std-hcp" / "relaxation" / "relax_task" / "CONTCAR", format="vasp")
    relaxed.calc = EMT()
    e0 = relaxed.get_potential_energy() / len(relaxed)
    start = {m["site"]: a for a, m in hcp_interstitial(supercell=[2, 2, 2]).make(relaxed, None)}["O"]
    start.calc = EMT()
    BFGS(start, logfile=None).run(fmax=1e-4, steps=2000)
    assert rows["O"]["formation_energy_eV"] == pytest.approx(start.get_potential_energy() - len(start) * e0, abs=5e-3)
    out = (tmp_path / "confs" / "std-hcp" / "interstitial_00" / "result.out").read_text()
    assert "relaxed to" in out
