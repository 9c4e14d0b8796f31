"""Autotest property ``neb``: vacancy migration energy by climbing-image NEB, LAMMPS (fix neb on MPI
partitions) and ASE (ase.mep.NEB) routes, each against a band built by hand and relaxed here with ASE."""

import json
import time

import ase.build
import ase.io
import numpy as np
import pytest
from ase.calculators.emt import EMT
from ase.geometry import find_mic
from ase.mep import NEB
from ase.optimize import BFGS

from dpgen_lite.autotest.calculators.lammps import potentials_dir
from dpgen_lite.autotest.schema import load_param
from dpgen_lite.cli import main
from dpgen_lite.params import ParamError

from .conftest import write_param
from .test_autotest_properties import EMT_INTER, write_conf

FCC = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True)
HCP = ase.build.bulk("Cu", "hcp", a=2.55, c=4.16)
NEB_KEYS = {"type": "neb", "supercell": [2, 2, 2], "n_images": 3, "fmax": 0.005}
MISHIN = {"name": "eam", "type": "eam_alloy", "model": "Cu_mishin1.eam.alloy", "type_map": ["Cu"]}


def run_neb(work, inter, structure=FCC, name="std-fcc", more=(), **keys):
    """``dpgen autotest all`` of the relaxation, one ``neb`` property and the properties ``more``
    (in ``confs/<name>``, written unless there); returns (the results by folder, wall time s)."""
    if not (work / "confs" / name).is_dir():
        write_conf(work, structure, name)
    write_param(work, {"structures": [f"confs/{name}"], "interaction": inter,
                       "relaxation": {"cal_setting": {"fmax": 1e-5}}, "properties": [{**NEB_KEYS, **keys}, *more]})
    start = time.perf_counter()
    assert main(["autotest", "all", str(work / "param.json"), "--work-dir", str(work)]) == 0
    wall = time.perf_counter() - start
    return json.loads((work / "result.json").read_text())["confs"][f"confs/{name}"], wall


def hand_built_barrier(work, name, calc, hop, size, n_images=3) -> float:
    """The barrier (eV) of ``hop`` by hand: the relaxed cell of the run repeated ``size``, the site's
    atom removed, the neighbour moved into it, both relaxed with BFGS, a linear band of ``n_images``
    relaxed with ASE's climbing-image NEB (BFGS), every image on the one calculator ``calc``."""
    cell = ase.io.read(work / "confs" / name / "relaxation" / "relax_task" / "CONTCAR", format="vasp")
    big = cell.repeat(size)
    vector = np.asarray(hop["vector_frac"]) @ cell.cell.array
    target = big.positions[hop["site"]] + vector
    frac = np.linalg.solve(big.cell.array.T, (big.positions - target).T).T
    j = int(np.argmin(np.linalg.norm((frac - np.round(frac)) @ big.cell.array, axis=1)))
    initial = big.copy()
    del initial[hop["site"]]
    final = initial.copy()
    final.positions[j - (j > hop["site"])] -= vector
    images = [initial, *(initial.copy() for _ in range(n_images)), final]
    for atoms in images:
        atoms.calc = calc
    for atoms in (initial, final):
        BFGS(atoms, logfile=None).run(fmax=1e-3, steps=2000)
    band = NEB(images, k=1.0, climb=True, method="improvedtangent", allow_shared_calculator=True)
    band.interpolate()  # linear
    BFGS(band, logfile=None).run(fmax=0.01, steps=2000)
    return max(a.get_potential_energy() for a in images) - initial.get_potential_energy()


def test_fcc_emt_barrier_symmetric_and_as_by_hand(tmp_path):
    """The nearest-neighbour hop found, and the same hop given as end-point files on the POSCAR's
    cell (strained to the relaxed cell by the property), against a band relaxed by hand."""
    conf = write_conf(tmp_path, FCC)
    initial = FCC.repeat(2)
    del initial[0]
    final = initial.copy()
    final.positions[0] = [0, 0, 0]  # the neighbour at (0, a/2, a/2) into the vacancy
    initial.write(conf / "init.vasp", format="vasp")
    final.write(conf / "final.vasp", format="vasp")
    user = {**NEB_KEYS, "suffix": "user", "init_confs": "init.vasp", "final_confs": ["final.vasp"]}
    found, wall = run_neb(tmp_path, EMT_INTER, more=[user])
    res = found["neb_00"]
    (hop,) = res["hops"]
    (given,) = found["neb_user"]["hops"]
    assert given["barrier_eV"] == pytest.approx(hop["barrier_eV"], abs=1e-3)
    assert given["reaction_coordinate_A"] == pytest.approx(hop["reaction_coordinate_A"], abs=1e-3)
    print(f"EMT fcc Cu, ASE route: E_m = {hop['barrier_eV']:.4f} eV, {wall:.1f} s")
    assert hop["multiplicity"] == 12 and hop["natoms"] == 31
    assert 0.3 < hop["barrier_eV"] < 1.0 and res["barrier_eV"] == hop["barrier_eV"]
    energies = np.array(hop["energies_eV"])
    assert len(energies) == 5 and energies[0] == 0 and hop["saddle_image"] == 2
    assert energies == pytest.approx(energies[::-1], abs=2e-3)  # the fcc hop is symmetric
    rc = np.array(hop["reaction_coordinate_A"])
    assert np.all(np.diff(rc) > 0) and rc[-1] == pytest.approx(hop["distance_A"], rel=0.3)
    folder = tmp_path / "confs" / "std-fcc" / "neb_00"
    assert (folder / hop["plot"]).stat().st_size > 1000
    band = ase.io.read(folder / hop["band_file"], index=":")
    assert [a.get_potential_energy() - band[0].get_potential_energy() for a in band] == pytest.approx(energies)
    by_hand = hand_built_barrier(tmp_path, "std-fcc", EMT(), hop, (2, 2, 2))
    print(f"EMT fcc Cu by hand: {by_hand:.4f} eV")
    assert hop["barrier_eV"] == pytest.approx(by_hand, abs=0.02)
    assert "E_m (eV)" in (folder / "result.out").read_text()


def test_fcc_mishin_lammps_partitions_against_ase_eam(tmp_path):
    """LAMMPS's fix neb (5 MPI partitions) with Mishin's Cu EAM against ASE's own EAM calculator on the
    same file, by hand, with one climbing image (ASE's EAM is slow; one image climbs to the saddle all
    the same); Mishin et al., PRB 63, 224106 (2001) give E_m = 0.69 eV."""
    from ase.calculators.eam import EAM
    res, wall = run_neb(tmp_path, MISHIN)
    (hop,) = res["neb_00"]["hops"]
    print(f"Mishin Cu, LAMMPS route: E_m = {hop['barrier_eV']:.4f} eV, {wall:.1f} s")
    assert (tmp_path / "confs" / "std-fcc" / "neb_00" / "task.000000" / "log.lammps.4").is_file()
    assert hop["barrier_eV"] == pytest.approx(0.69, abs=0.05)
    energies = np.array(hop["energies_eV"])
    assert energies == pytest.approx(energies[::-1], abs=2e-3)
    potential = str(potentials_dir() / "Cu_mishin1.eam.alloy")
    by_hand = hand_built_barrier(tmp_path, "std-fcc", EAM(potential=potential), hop, (2, 2, 2), n_images=1)
    print(f"Mishin Cu by hand (ASE EAM): {by_hand:.4f} eV")
    assert hop["barrier_eV"] == pytest.approx(by_hand, abs=0.02)


def test_hcp_two_hops_reported(tmp_path):
    res, wall = run_neb(tmp_path, EMT_INTER, HCP, "std-hcp", supercell=[3, 3, 2])
    res = res["neb_00"]
    print(f"EMT hcp Cu, ASE route: {[(h['hop'], round(h['barrier_eV'], 4)) for h in res['hops']]}, {wall:.1f} s")
    assert len(res["hops"]) == 2
    basal = [h for h in res["hops"] if h["vector_frac"][2] == 0]
    out = [h for h in res["hops"] if abs(h["vector_frac"][2]) == 0.5]
    assert len(basal) == 1 and len(out) == 1
    assert basal[0]["multiplicity"] == 6 and out[0]["multiplicity"] == 6
    for hop in res["hops"]:
        assert 0.1 < hop["barrier_eV"] < 1.5
    assert abs(basal[0]["barrier_eV"] - out[0]["barrier_eV"]) > 1e-3  # two distinct hops
    assert res["barrier_eV"] == min(h["barrier_eV"] for h in res["hops"])
    by_hand = hand_built_barrier(tmp_path, "std-hcp", EMT(), basal[0], (3, 3, 2))
    assert basal[0]["barrier_eV"] == pytest.approx(by_hand, abs=0.02)


def test_end_points_with_different_atom_counts_refused(tmp_path, capsys):
    conf = write_conf(tmp_path)
    big = FCC.repeat(2)
    initial = big.copy()
    del initial[0]
    initial.write(conf / "init.vasp", format="vasp")
    big.write(conf / "final.vasp", format="vasp")  # 32 atoms against 31
    write_param(tmp_path, {"structures": ["confs/std-fcc"], "interaction": EMT_INTER,
                           "properties": [{"type": "neb", "init_confs": ["init.vasp"], "final_confs": ["final.vasp"]}]})
    assert main(["autotest", "make", str(tmp_path / "param.json"), "--work-dir", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert "properties[neb].final_confs[0] = 'final.vasp' has 32 atoms" in err
    assert "init_confs[0] = 'init.vasp' has 31" in err and "same number" in err
    assert not (conf / "relaxation").exists()


@pytest.mark.parametrize("derived", [{"output_suffix": "01"}, {"reproduce": True, "init_data_path": "../vasp/confs"}])
def test_refine_and_reproduce_refused(tmp_path, derived):
    """A band is neither refined (DP-GEN's ``output_suffix``) nor reproduced: refused at load, naming the key."""
    write_conf(tmp_path)
    with pytest.raises(ParamError) as err:
        load_param({"structures": ["confs/std-fcc"], "interaction": EMT_INTER,
                    "properties": [{"type": "neb", **derived}]}, tmp_path)
    key = next(iter(derived))
    assert f"properties[0].{key} = {derived[key]!r}: neb is neither refined nor reproduced" in str(err.value)
    assert "remove output_suffix, init_from_suffix, reproduce and init_data_path" in str(err.value)


def test_special_set_generator_gives_the_bands(tmp_path):
    """final_training's ``neb`` generator: every band, end points included, interpolated (IDPP):
    a vacancy hop of fcc Cu gives 2 + n_images frames of 31 atoms, one atom moving a neighbour distance."""
    from dpgen_lite.train.final import generated_structures

    FCC.write(tmp_path / "POSCAR", format="vasp")
    band = generated_structures({"structure": "POSCAR", "type": "neb", "supercell": [2, 2, 2], "n_images": 3},
                                tmp_path, ["Cu"])
    assert len(band) == 5 and {s.get_natoms() for s in band} == {31}
    frames = [s.to("ase/structure")[0] for s in band]
    moved = sum(find_mic(b.positions - a.positions, a.cell)[1] for a, b in zip(frames, frames[1:]))  # Å per atom
    assert np.sort(moved)[-1] == pytest.approx(3.6 / np.sqrt(2), abs=0.05) and np.sort(moved)[-2] < 0.3
