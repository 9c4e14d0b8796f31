"""dpgen init_bulk, DP-GEN's staged route: a DP-GEN init param.json as it is, VASP relaxation and AIMD
inputs, collection of recorded VASP OUTCARs, and a real CP2K run of stages 1-4 on 4-atom fcc Al.

DP-GEN's example files are in tests/dpgen_examples (provenance: its PROVENANCE.md, DP-GEN commit
d5ce577fb91b9b6f3586748371ab1c231a586791, LGPL-3.0); the recorded OUTCARs in tests/fixtures/vasp
(provenance: tests/fixtures/README.md).
"""

import json
import logging
import re
import subprocess
from pathlib import Path

import ase.build
import ase.io
import dpdata
import numpy as np
import pytest
from ase.calculators.emt import EMT

from dpgen_lite.dispatch import default_stage
from dpgen_lite.init_bulk import check_init_bulk, init_bulk, read_structure
from dpgen_lite.label.base import get_style
from dpgen_lite.label.cp2k import keyword, parse_cp2k_input, section_at, stress_blocks_gpa
from dpgen_lite.params import ParamError
from dpgen_lite.schema import validate_init_bulk
from tests.fp_helpers import fake_potcar

TESTS = Path(__file__).resolve().parent
DPGEN_INIT = TESTS / "dpgen_examples" / "init"
VASP_FIXTURES = TESTS / "fixtures" / "vasp"

RELAX_INCAR = "PREC = Accurate\nENCUT = 400\nISMEAR = 1\nSIGMA = 0.2\nIBRION = 2\nISIF = 3\nNSW = 50\nEDIFF = 1e-6\n"
MD_INCAR = "PREC = Accurate\nENCUT = 400\nISMEAR = 1\nSIGMA = 0.2\nIBRION = 0\nPOTIM = 1\nTEBEG = 300\nSMASS = 0\n"
CH4_POSCAR = """CH4
1.0
10.0 0.0 0.0
0.0 10.0 0.0
0.0 0.0 10.0
H C
4 1
Cartesian
5.63 5.63 5.63
4.37 4.37 5.63
4.37 5.63 4.37
5.63 4.37 4.37
5.00 5.00 5.00
"""


def load(folder: Path, data: dict, name: str = "init.json") -> dict:
    """Every check of `dpgen init_bulk` (schema, DP-GEN key screening, init_bulk and fp-style checks);
    a single problem is raised as it is, so that its message can be matched."""
    try:
        return validate_init_bulk(data, folder, name)[0]
    except ParamError as err:
        lines = [line[4:] for line in str(err).splitlines() if line.startswith("  - ")]
        raise ParamError(lines[0] if len(lines) == 1 else str(err)) from None


def al_setup(folder: Path) -> dict:
    """DP-GEN's examples/init/al.json, unchanged, with the files it names written beside it."""
    data = json.loads((DPGEN_INIT / "al.json").read_text())
    ase.build.bulk("Al", "fcc", a=4.05, cubic=True).write(folder / "al.POSCAR", format="vasp", direct=True)
    fake_potcar(folder / "POTCAR", "Al")
    (folder / "INCAR.rlx").write_text(RELAX_INCAR)
    (folder / "INCAR.md").write_text(MD_INCAR + "NSW = 10\n")
    return data


def test_dpgen_al_json_validates(tmp_path):
    data = al_setup(tmp_path)
    assert "stages" not in data and "fp_style" not in data  # the file is used as it is
    p = load(tmp_path, data, "al.json")
    assert p["stages"] == [2, 3, 4]  # DP-GEN requires stages; skip_relax: true -> no relaxation
    assert p["type_map"] == ["Mg", "Al"] and p["elements"] == ["Al"]
    assert p["md_nstep"] == 10 and p["coll_ndata"] == 10 and p["pert_numb"] == 30


@pytest.mark.parametrize("change, fragments", [
    (lambda d: d.update(stages=[1, 2, 3, 4], init_fp_style="ABACUS"),
     ["stages = [1, 2, 3, 4]", "init_fp_style = 'ABACUS'", "vasp or cp2k", "skip_relax: true", "stages: [2, 4]"]),
    (lambda d: d.update(stages=[2, 3, 4], fp_style="ase", fp_params={"calculator": "ase.calculators.emt.EMT"}),
     ["fp_style = 'ase'", "stage 3", "stages: [2, 4]"]),
    (lambda d: d.update(stages=[2, 5]), ["stages = [2, 5]", "1 (relax)"]),
    (lambda d: d.update(stages=[3, 2]), ["stages = [3, 2]", "ascending"]),
    (lambda d: d.update(stages=[2, 4]), ["stages = [2, 4]", "fp_style", "add 3 to stages"]),
    (lambda d: d.update(stages=[2, 3, 4], skip_relax=False), ["skip_relax = false", "add 1 to stages"]),
    (lambda d: d.update(init_fp_style="QE"), ["init_fp_style = 'QE'", "VASP, ABACUS"]),
    (lambda d: d.update(type_map=["Mg"]), ["type_map = ['Mg']", "['Al']"]),
    (lambda d: d.update(from_poscar=False, cell_type="bct", latt=4.0), ["cell_type = 'bct'", "fcc"]),
    (lambda d: d.update(from_poscar=False, latt=None), ["latt = None", "lattice constant"]),
    (lambda d: d.update(super_cell=[1, 1]), ["super_cell = [1, 1]", "3 positive integers"]),
    (lambda d: d.update(scale=[1.0, -0.9]), ["scale = [1.0, -0.9]", "positive"]),
    (lambda d: d.update(pert_box=1.5), ["pert_box = 1.5", "[0, 1)"]),
    (lambda d: d.update(coll_ndata=0), ["coll_ndata = 0", ">= 1"]),
    (lambda d: d.update(potcars=["POTCAR", "POTCAR"]), ["potcars = ['POTCAR', 'POTCAR']", "one POTCAR per entry"]),
    (lambda d: d.update(potcars=["POTCAR.Cu"]), ["potcars[0] = 'POTCAR.Cu'", "POTCAR for Cu", "elements[0] = 'Al'"]),
    (lambda d: d.update(md_incar="INCAR.relax_as_md"), ["md_incar", "IBRION = 2", "IBRION = 0"]),
    (lambda d: d.update(stages=[1, 2, 3, 4], relax_incar="INCAR.sp"), ["relax_incar", "NSW = 0", "skip_relax"]),
    (lambda d: d.update(md_incar="missing.md"), ["md_incar = 'missing.md'", "no such file"]),
    (lambda d: d.update(reuse_relax_chgcar=True), ["reuse_relax_chgcar = true", "add 1 to stages"]),
    (lambda d: d.update(from_poscar_path="nowhere.POSCAR"), ["from_poscar_path = 'nowhere.POSCAR'"]),
])
def test_dpgen_keys_refused_with_reason(tmp_path, change, fragments):
    data = al_setup(tmp_path)
    fake_potcar(tmp_path / "POTCAR.Cu", "Cu")
    (tmp_path / "INCAR.relax_as_md").write_text(RELAX_INCAR)
    (tmp_path / "INCAR.sp").write_text(MD_INCAR.replace("IBRION = 0", "IBRION = -1"))
    change(data)
    with pytest.raises(ParamError) as err:
        load(tmp_path, data)
    for fragment in fragments:
        assert fragment in str(err.value), (fragment, str(err.value))


def test_vasp_md_incar_nsw_wins_over_md_nstep(tmp_path, caplog):
    """DP-GEN's rule: an NSW in md_incar sets the number of steps; without one, NSW = md_nstep is written."""
    data = al_setup(tmp_path)
    p = load(tmp_path, data)
    style = get_style("vasp")(p, tmp_path)
    (tmp_path / "INCAR.md").write_text(MD_INCAR + "NSW = 5\n")
    p["md_nstep"] = 3
    with caplog.at_level(logging.WARNING):
        assert style.md_steps() == 5
    assert "NSW = 5 but md_nstep = 3" in caplog.text
    frame = dpdata.System(str(tmp_path / "al.POSCAR"), fmt="vasp/poscar")
    style.write_md_inputs(frame, tmp_path / "t5")
    assert re.findall(r"NSW\s*=\s*(\d+)", (tmp_path / "t5" / "INCAR").read_text()) == ["5"]
    (tmp_path / "INCAR.md").write_text(MD_INCAR)
    assert style.md_steps() == 3
    style.write_md_inputs(frame, tmp_path / "t3")
    incar = (tmp_path / "t3" / "INCAR").read_text()
    assert incar.startswith(MD_INCAR) and re.findall(r"NSW\s*=\s*(\d+)", incar) == ["3"]


FAKE_VASP = """#!/bin/sh
# stands in for VASP: relaxation -> CONTCAR 2 % larger, AIMD -> a recorded 3-step OUTCAR
echo "$(pwd)" >> {calls}
if grep -q "IBRION = 2" INCAR; then
    awk 'NR == 2 {{ print "1.02"; next }} {{ print }}' POSCAR > CONTCAR
    cp {fixtures}/OUTCAR.ch4.1step OUTCAR
else
    case "$(pwd)" in
        */000003) cp {fixtures}/OUTCAR.ch4.1step OUTCAR ;;   # an AIMD that stopped after 1 step
        *) cp {fixtures}/OUTCAR.ch4.unconverged OUTCAR ;;
    esac
fi
"""


def test_vasp_route_ch4_stages_1_to_4(tmp_path):
    """DP-GEN's examples/init/ch4.json (md_nstep 10 -> 3 to match the recorded OUTCAR, pert_numb 30 -> 3,
    coll_ndata 5000 -> 2) with a stand-in for VASP, through dpdispatcher."""
    data = json.loads((DPGEN_INIT / "ch4.json").read_text())
    data.update(md_nstep=3, pert_numb=3, coll_ndata=2)
    (tmp_path / "CH4.POSCAR").write_text(CH4_POSCAR)
    fake_potcar(tmp_path / "POTCAR_H", "H")
    fake_potcar(tmp_path / "POTCAR_C", "C")
    (tmp_path / "INCAR_methane.rlx").write_text(RELAX_INCAR)
    (tmp_path / "INCAR_methane.md").write_text(MD_INCAR)
    calls = tmp_path / "calls.txt"
    script = tmp_path / "fake_vasp.sh"
    script.write_text(FAKE_VASP.format(calls=calls, fixtures=VASP_FIXTURES))
    fp = default_stage("fp")
    fp.update(command=f"sh {script}", check_interval=0.2)
    mdata = {"fp": fp}
    p = load(tmp_path, data, "ch4.json")
    assert p["stages"] == [1, 2, 3, 4] and p["type_map"] == ["H", "C"]

    written = init_bulk(p, mdata, tmp_path)
    out = tmp_path / "CH4.POSCAR.01x01x01"
    sys_name = "sys-0004-0001"
    assert written == [out / "02.md" / sys_name / "deepmd"]
    # stage 1: POSCAR / INCAR / POTCAR of the relaxation, DP-GEN's layout
    relax = out / "00.place_ele" / sys_name
    assert (relax / "INCAR").read_text() == RELAX_INCAR
    potcar = (relax / "POTCAR").read_text()
    assert re.findall(r"TITEL\s*=\s*PAW_PBE (\w+)", potcar) == ["H", "C"]  # potcars order = elements order
    assert [ln.split() for ln in (relax / "POSCAR").read_text().splitlines()[5:7]] == [["H", "C"], ["4", "1"]]
    relaxed = dpdata.System(str(relax / "CONTCAR"), fmt="vasp/poscar")
    np.testing.assert_allclose(relaxed["cells"][0], 10.2 * np.eye(3), atol=1e-8)
    # stage 2: scaled from the CONTCAR, 000000 unperturbed, 000001..3 perturbed
    frames = out / "01.scale_pert" / sys_name / "scale-1.000"
    assert sorted(d.name for d in frames.iterdir() if d.is_dir()) == [f"{k:06d}" for k in range(4)]
    first = dpdata.System(str(frames / "000000" / "POSCAR"), fmt="vasp/poscar")
    np.testing.assert_allclose(first["cells"][0], relaxed["cells"][0], atol=1e-8)
    np.testing.assert_allclose(first["coords"][0], relaxed["coords"][0], atol=1e-6)  # from_poscar: no shuffle
    for k in range(1, 4):
        pert = dpdata.System(str(frames / f"{k:06d}" / "POSCAR"), fmt="vasp/poscar")
        strain = np.linalg.solve(first["cells"][0], pert["cells"][0]) - np.eye(3)
        assert np.abs(strain).max() <= 0.03 + 1e-9 and np.abs(strain).max() > 0   # pert_box
        moved = pert["coords"][0] - first["coords"][0] @ (np.eye(3) + strain)
        assert np.linalg.norm(moved, axis=1).max() <= 0.01 + 1e-6                # pert_atom
    # stage 3: md_incar + NSW = md_nstep, same POTCAR, the frame's POSCAR
    md = out / "02.md" / sys_name / "scale-1.000"
    for k in range(4):
        assert (md / f"{k:06d}" / "INCAR").read_text() == MD_INCAR + "NSW = 3\n"
        assert (md / f"{k:06d}" / "POTCAR").read_text() == potcar
        a, b = (dpdata.System(str(d / f"{k:06d}" / "POSCAR"), fmt="vasp/poscar") for d in (md, frames))
        np.testing.assert_allclose(a["cells"][0] @ a["cells"][0].T, b["cells"][0] @ b["cells"][0].T, atol=1e-8)
        frac = [s["coords"][0] @ np.linalg.inv(s["cells"][0]) for s in (a, b)]
        np.testing.assert_allclose(*frac, atol=1e-8)   # the same frame (dpdata may rotate the cell)
    # stage 4: DP-GEN's collection: 000003 (1 ionic step, not md_nstep) left out; each valid OUTCAR gives
    # its SCF-converged step (1 of 3); at most coll_ndata frames
    data = dpdata.LabeledSystem(str(written[0]), fmt="deepmd/npy")
    with pytest.warns(UserWarning, match="unconverged"):
        recorded = dpdata.LabeledSystem(str(VASP_FIXTURES / "OUTCAR.ch4.unconverged"), fmt="vasp/outcar",
                                        type_map=["H", "C"])
    assert recorded.get_nframes() == 1
    assert data.get_nframes() == 2 and data.get_atom_names() == ["H", "C"] and data.get_atom_numbs() == [4, 1]
    np.testing.assert_allclose(data["energies"], np.repeat(recorded["energies"], 2))
    np.testing.assert_allclose(data["forces"][1], recorded["forces"][0])
    assert (written[0] / "type_map.raw").read_text().split() == ["H", "C"]
    assert sorted(p.name for p in written[0].glob("set.*")) == ["set.000"]
    assert np.all(np.isfinite(data["forces"])) and "virials" in data.data

    # a rerun redoes nothing: no program started, the data unchanged
    n_calls = len(calls.read_text().splitlines())
    assert n_calls == 1 + 4
    assert init_bulk(p, mdata, tmp_path) == written
    assert len(calls.read_text().splitlines()) == n_calls
    again = dpdata.LabeledSystem(str(written[0]), fmt="deepmd/npy")
    np.testing.assert_allclose(again["energies"], data["energies"])
    # changing what stage 2 made is refused instead of silently mixing old and new frames
    p2 = dict(p, pert_atom=0.02)
    with pytest.raises(ParamError, match=r"pert_atom = 0.01 then, 0.02 now"):
        check_init_bulk(p2, tmp_path)


def test_cell_type_places_every_composition(tmp_path):
    """DP-GEN's place_element: for cell_type with two elements, one system per composition; species
    re-shuffled over the sites in every perturbed copy (stage 2 only: no program needed)."""
    data = {"stages": [2], "elements": ["Al", "Mg"], "cell_type": "fcc", "latt": 4.1, "super_cell": [1, 1, 1],
            "skip_relax": True, "scale": [1.0], "pert_numb": 2, "pert_box": 0.0, "pert_atom": 0.0}
    p = load(tmp_path, data)
    init_bulk(p, {}, tmp_path)
    out = tmp_path / "almg.fcc.01x01x01"
    names = sorted(d.name for d in (out / "01.scale_pert").glob("sys-*"))
    assert names == ["sys-0001-0003", "sys-0002-0002", "sys-0003-0001"]
    sites = 4.1 * np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    for name in names:
        counts = [int(c) for c in name.split("-")[1:]]
        for k in range(3):
            frame = dpdata.System(str(out / "01.scale_pert" / name / "scale-1.000" / f"{k:06d}" / "POSCAR"),
                                  fmt="vasp/poscar")
            assert frame.get_atom_names() == ["Al", "Mg"] and list(frame.get_atom_numbs()) == counts
            got = sorted(map(tuple, np.round(frame["coords"][0], 6)))
            assert got == sorted(map(tuple, np.round(sites, 6)))


def test_cp2k_relax_and_md_inputs(tmp_path):
    """CP2K inputs of stages 1 and 3 built on the single-point input: RUN_TYPE, MOTION, prints, fragments."""
    (tmp_path / "relax.inp").write_text("&GLOBAL\n  RUN_TYPE GEO_OPT\n&END GLOBAL\n"
                                        "&MOTION\n  &GEO_OPT\n    MAX_ITER 7\n  &END GEO_OPT\n&END MOTION\n")
    (tmp_path / "md.inp").write_text("&MOTION\n  &MD\n    TEMPERATURE 600\n  &END MD\n&END MOTION\n")
    data = {"stages": [1, 2, 3, 4], "elements": ["Al"], "cell_type": "fcc", "latt": 4.05, "super_cell": [1, 1, 1],
            "pert_numb": 1, "md_nstep": 4, "fp_style": "cp2k", "fp_params": {"cutoff": 150, "kpoints": [2, 2, 2]}}
    p = load(tmp_path, data)
    style = get_style("cp2k")(p, tmp_path)
    frame = dpdata.System(ase.build.bulk("Al", "fcc", a=4.05, cubic=True), fmt="ase/structure")

    assert style.write_relax_inputs(frame, tmp_path / "relax") == ["input.inp"]
    root = parse_cp2k_input((tmp_path / "relax" / "input.inp").read_text())
    assert keyword(section_at(root, "GLOBAL"), "RUN_TYPE") == "CELL_OPT"
    assert keyword(section_at(root, "GLOBAL"), "PROJECT") == "cp2k"
    assert section_at(root, "MOTION/PRINT/CELL").params == "ON"
    assert keyword(section_at(root, "FORCE_EVAL/DFT/MGRID"), "CUTOFF") == "150"
    assert len(keyword(section_at(root, "FORCE_EVAL/SUBSYS/COORD"), "Al").split()) == 3

    style.write_md_inputs(frame, tmp_path / "md")
    root = parse_cp2k_input((tmp_path / "md" / "input.inp").read_text())
    md = section_at(root, "MOTION/MD")
    assert keyword(section_at(root, "GLOBAL"), "RUN_TYPE") == "MD"
    assert (keyword(md, "STEPS"), keyword(md, "ENSEMBLE"), keyword(md, "TEMPERATURE")) == ("4", "NVT", "300.0")
    assert keyword(section_at(md, "THERMOSTAT"), "TYPE") == "CSVR"
    for name in ("TRAJECTORY", "FORCES", "CELL"):
        assert keyword(section_at(root, f"MOTION/PRINT/{name}/EACH"), "MD") == "1"
    assert keyword(section_at(root, "FORCE_EVAL/PRINT/STRESS_TENSOR/EACH"), "MD") == "1"

    p.update(relax_incar="relax.inp", md_incar="md.inp")
    style = get_style("cp2k")(p, tmp_path)
    style.check_init_stages(p["stages"])
    style.write_relax_inputs(frame, tmp_path / "relax2")
    root = parse_cp2k_input((tmp_path / "relax2" / "input.inp").read_text())
    assert keyword(section_at(root, "GLOBAL"), "RUN_TYPE") == "GEO_OPT"
    assert keyword(section_at(root, "MOTION/GEO_OPT"), "MAX_ITER") == "7"
    style.write_md_inputs(frame, tmp_path / "md2")
    md = section_at(parse_cp2k_input((tmp_path / "md2" / "input.inp").read_text()), "MOTION/MD")
    assert (keyword(md, "TEMPERATURE"), keyword(md, "STEPS")) == ("600", "4")

    (tmp_path / "md.inp").write_text("&GLOBAL\n  RUN_TYPE ENERGY\n&END GLOBAL\n")
    with pytest.raises(ValueError, match=r"md_incar = 'md.inp' sets GLOBAL/RUN_TYPE ENERGY; allowed there: MD"):
        style.check_init_stages(p["stages"])
    with pytest.raises(ParamError, match="reuse_relax_chgcar = true: a VASP option"):
        load(tmp_path, {**data, "reuse_relax_chgcar": True})


def test_cp2k_stages_1_to_4_real(tmp_path):
    """Real CP2K (PBE, GTH, SZV basis, 150 Ry, 2x2x2 k-points, Fermi-Dirac): CELL_OPT of 4-atom fcc Al
    from a = 4.10 Å, one perturbed copy, 3-step NVT AIMD from each frame, collection; every stage
    through dpdispatcher; the MD reader checked against a single-point label of the same frame."""
    (tmp_path / "md.inp").write_text("&MOTION\n  &MD\n    TEMPERATURE 600\n    TIMESTEP 2.0\n  &END MD\n&END MOTION\n")
    data = {
        "stages": [1, 2, 3, 4], "elements": ["Al"], "cell_type": "fcc", "latt": 4.10, "super_cell": [1, 1, 1],
        "skip_relax": False, "scale": [1.0], "pert_numb": 1, "pert_box": 0.02, "pert_atom": 0.05,
        "md_nstep": 3, "coll_ndata": 6, "md_incar": "md.inp", "fp_style": "cp2k",
        "fp_params": {"cutoff": 150, "rel_cutoff": 30, "kpoints": [2, 2, 2], "eps_scf": 1e-5,
                      "basis_set": "SZV-MOLOPT-SR-GTH"},
        "user_fp_params": {"FORCE_EVAL": {"DFT": {"QS": {"EPS_DEFAULT": 1e-10}}}},
    }
    p = load(tmp_path, data)
    fp = default_stage("fp")
    fp["resources"]["group_size"] = 100  # the tasks one after another, each on every core
    mdata = {"fp": fp}
    written = init_bulk(p, mdata, tmp_path)
    out = tmp_path / "al.fcc.01x01x01"
    assert written == [out / "02.md" / "sys-0004" / "deepmd"]

    # stage 1: the cell relaxed (SZV-basis Al: about 4.23 Å), the pressure relieved
    relax = out / "00.place_ele" / "sys-0004"
    relaxed = dpdata.System(str(relax / "CONTCAR"), fmt="vasp/poscar")
    a = np.diag(relaxed["cells"][0])
    assert np.allclose(a, a[0], atol=1e-4) and abs(a[0] - 4.10) > 0.03
    stresses = stress_blocks_gpa((relax / "output").read_text())
    assert np.abs(np.trace(stresses[0])) / 3 > 1.0 and np.abs(stresses[-1]).max() < 0.3  # GPa
    # stage 2 from the relaxed cell
    first = dpdata.System(str(out / "01.scale_pert/sys-0004/scale-1.000/000000/POSCAR"), fmt="vasp/poscar")
    np.testing.assert_allclose(first["cells"][0], relaxed["cells"][0], atol=1e-6)
    # stages 3-4: 2 tasks x 4 frames (steps 0..3), at most coll_ndata = 6 kept
    data = dpdata.LabeledSystem(str(written[0]), fmt="deepmd/npy")
    assert data.get_nframes() == 6 and data.get_atom_names() == ["Al"]
    for key in ("energies", "forces", "virials"):
        assert np.all(np.isfinite(data[key]))
    assert np.all(np.abs(data["energies"] / 4 + 55.1) < 1.0)   # eV/atom, SZV/GTH-PBE Al
    np.testing.assert_allclose(data["cells"][:4], np.repeat(relaxed["cells"], 4, axis=0), atol=1e-6)  # NVT
    assert np.abs(data["forces"][4]).max() > 0.05                    # the perturbed copy
    assert not np.allclose(data["coords"][4], data["coords"][5])     # atoms move

    # the MD reader's step 0 = a single-point label of the same frame (units, virial sign)
    md_task = out / "02.md/sys-0004/scale-1.000/000001"
    md_frames = get_style("cp2k")(p, tmp_path).read_md(md_task, 3)
    sp = tmp_path / "single_point"
    style = get_style("cp2k")(p, tmp_path)
    style.write_inputs(dpdata.System(str(md_task / "POSCAR"), fmt="vasp/poscar"), sp)
    subprocess.run(style.default_command(), shell=True, cwd=sp, check=True)
    label = style.read_label(sp)
    assert md_frames["energies"][0] == pytest.approx(label["energies"][0], abs=2e-4)
    np.testing.assert_allclose(md_frames["forces"][0], label["forces"][0], atol=2e-3)
    np.testing.assert_allclose(md_frames["virials"][0], label["virials"][0], atol=2e-2)
    np.testing.assert_allclose(md_frames["coords"][0], label["coords"][0], atol=1e-5)

    # a rerun redoes nothing (no CP2K output rewritten) and gives the same data
    stamps = {f: f.stat().st_mtime_ns for f in out.rglob("output")}
    assert init_bulk(p, mdata, tmp_path) == written
    assert {f: f.stat().st_mtime_ns for f in out.rglob("output")} == stamps
    np.testing.assert_allclose(dpdata.LabeledSystem(str(written[0]), fmt="deepmd/npy")["energies"], data["energies"])


def test_stages_2_and_4_label_with_any_fp_style(tmp_path):
    """The way offered to styles that cannot relax or run AIMD: skip_relax and stages [2, 4] with
    fp_style; stage 4 labels every frame of stage 2 with single points (here EMT) into DP-GEN's layout."""
    data = {"stages": [2, 4], "elements": ["Cu"], "cell_type": "fcc", "latt": 3.61, "super_cell": [1, 1, 1],
            "skip_relax": True, "scale": [0.99, 1.01], "pert_numb": 2, "pert_box": 0.02, "pert_atom": 0.05,
            "coll_ndata": 5, "fp_style": "ase", "fp_params": {"calculator": "ase.calculators.emt.EMT"}}
    p = load(tmp_path, data)
    written = init_bulk(p, {}, tmp_path)
    out = tmp_path / "cu.fcc.01x01x01"
    assert written == [out / "02.md" / "sys-0004" / "deepmd"]
    assert len(list((out / "02.fp").glob("task.000.*"))) == 6      # 2 scales x (1 + pert_numb) frames
    labelled = dpdata.LabeledSystem(str(written[0]), fmt="deepmd/npy")
    assert labelled.get_nframes() == 5 and labelled.get_atom_names() == ["Cu"]   # coll_ndata
    for k, where in enumerate(["scale-0.990/000000", "scale-0.990/000001", "scale-0.990/000002",
                               "scale-1.010/000000", "scale-1.010/000001"]):   # DP-GEN's order, first 5
        frame = ase.io.read(out / "01.scale_pert/sys-0004" / where / "POSCAR")
        frame.calc = EMT()
        assert labelled["energies"][k] == pytest.approx(frame.get_potential_energy(), abs=1e-6)


def test_vasp_relax_inputs_potcar_follows_the_frame(tmp_path):
    """POTCAR = potcars of the elements present, in elements order; POSCAR species in the same order;
    the relaxation INCAR is relax_incar verbatim."""
    for el in ("Mg", "Al", "Cu"):
        fake_potcar(tmp_path / f"POTCAR.{el}", el)
    (tmp_path / "INCAR.rlx").write_text(RELAX_INCAR)
    atoms = ase.build.bulk("Cu", "fcc", a=3.8, cubic=True)
    atoms[1].symbol = atoms[3].symbol = "Mg"           # Cu Mg Cu Mg: interleaved, no Al
    atoms.write(tmp_path / "CuMg.POSCAR", format="vasp")
    data = {"stages": [1], "elements": ["Mg", "Al", "Cu"], "from_poscar": True, "from_poscar_path": "CuMg.POSCAR",
            "super_cell": [1, 1, 1], "pert_numb": 0, "potcars": ["POTCAR.Mg", "POTCAR.Al", "POTCAR.Cu"],
            "relax_incar": "INCAR.rlx"}
    p = load(tmp_path, data)
    style = get_style("vasp")(p, tmp_path)
    frame = read_structure(tmp_path / "CuMg.POSCAR", p["elements"])
    assert style.write_relax_inputs(frame, tmp_path / "task") == ["POSCAR", "INCAR", "POTCAR"]
    assert re.findall(r"TITEL\s*=\s*PAW_PBE (\w+)", (tmp_path / "task" / "POTCAR").read_text()) == ["Mg", "Cu"]
    written = ase.io.read(tmp_path / "task" / "POSCAR", format="vasp")
    assert written.get_chemical_symbols() == ["Mg", "Mg", "Cu", "Cu"]
    assert sorted(map(tuple, np.round(written.positions, 6))) == sorted(map(tuple, np.round(atoms.positions, 6)))
    assert (tmp_path / "task" / "INCAR").read_text() == RELAX_INCAR
    assert style.relax_backward_files() == ["OUTCAR", "CONTCAR"]
