"""DP-GEN's data and exploration keys: init data folders and HDF5, sys_format, shuffle_poscar,
per-job dt and trust levels, model_devi_nopbc, use_relative, model_devi_clean_traj as an int."""


import ase.build
import dpdata
import numpy as np
import pytest

from dpgen_lite.context import Context
from dpgen_lite.explore.stage import make_model_devi
from dpgen_lite.label.stage import clean_trajectories
from dpgen_lite.params import ParamError
from dpgen_lite.schema import validate_run
from dpgen_lite.select.trust import system_trust
from dpgen_lite.train.data import init_systems
from tests.conftest import emt_frames


def test_init_data_folder_of_systems_and_hdf5(cu_run):
    folder, param = cu_run
    multi = dpdata.MultiSystems(emt_frames(3, seed=1), emt_frames(2, seed=2, atoms=ase.build.bulk(
        "Cu", "fcc", a=3.61, cubic=True)))
    multi.to("deepmd/npy", str(folder / "many"))
    multi.to("deepmd/hdf5", str(folder / "many.h5"))
    param["init_data_sys"] = ["init", "many", "many.h5"]
    checked, _ = validate_run(param, folder)
    systems = init_systems(checked, folder)
    assert [i for i, _ in systems] == [0, 1, 1, 2, 2]
    assert all("#/" in s for i, s in systems if i == 2)
    natoms = sorted(dpdata.LabeledSystem(s, fmt="deepmd/hdf5").get_natoms() for i, s in systems if i == 2)
    assert natoms == [4, 32]


def test_init_data_without_type_map_raw_is_named(cu_run):
    folder, param = cu_run
    (folder / "init" / "type_map.raw").unlink()
    with pytest.raises(ParamError, match=r"init_data_sys\[0\].*no type_map.raw"):
        validate_run(param, folder)


def test_lammps_data_configurations_take_type_map(cu_run):
    folder, param = cu_run
    system = dpdata.System(str(folder / "confs" / "000" / "POSCAR"), fmt="vasp/poscar")
    system.to("lammps/lmp", str(folder / "conf.lmp"))
    assert dpdata.System(str(folder / "conf.lmp"), fmt="lammps/lmp")["atom_names"] == ["Type_0"]  # no names
    param.update(sys_configs_prefix="", sys_configs=[["conf.lmp"]], sys_format="lammps/lmp")
    validate_run(param, folder)
    param["sys_format"] = "lammps/nothing"
    with pytest.raises(ParamError, match="sys_format = 'lammps/nothing': not a dpdata format"):
        validate_run(param, folder)


def _ctx(folder, param):
    checked, _ = validate_run(param, folder)
    return Context(checked, {}, folder)


def _alloy(folder):
    atoms = ase.build.bulk("Cu", "fcc", a=3.7, cubic=True).repeat(2)
    atoms.symbols[::3] = "Al"
    (folder / "alloy").mkdir()
    atoms.write(folder / "alloy" / "POSCAR", format="vasp", sort=True)
    return dpdata.System(str(folder / "alloy" / "POSCAR"), fmt="vasp/poscar", type_map=["Cu", "Al"])


def test_shuffle_poscar_and_lammps_keys(cu_run):
    folder, param = cu_run
    original = _alloy(folder)
    param["default_training_param"]["model"]["type_map"] = ["Cu", "Al"]
    param["default_training_param"]["model"]["descriptor"]["sel"] = [60, 60]  # one per type
    param.update(type_map=["Cu", "Al"], mass_map="auto", sys_configs_prefix="", sys_configs=[["alloy/POSCAR"]],
                 shuffle_poscar=True, model_devi_nopbc=True, use_relative=True, epsilon=1.0,
                 lmp_neigh_modify_one=5000)
    param["model_devi_jobs"][0].update(dt=0.0005, model_devi_f_trust_lo=0.02, model_devi_f_trust_hi=0.3)
    ctx = _ctx(folder, param)
    make_model_devi(ctx, 0)
    task = folder / "iter.000000" / "01.model_devi" / "task.000.000000"
    conf = dpdata.System(str(task / "conf.lmp"), fmt="lammps/lmp", type_map=["Cu", "Al"])
    # the same atoms (positions with their types), in another order
    assert not np.allclose(conf["coords"], original["coords"])
    key = lambda s: sorted(map(tuple, np.round(np.c_[s["coords"][0], s["atom_types"]], 6)))  # noqa: E731
    assert key(conf) == key(original)
    text = (task / "input.lammps").read_text()
    assert "timestep 0.0005" in text and "boundary f f f" in text and "neigh_modify one 5000" in text
    assert " relative 1.0" in text
    trust = system_trust(ctx.param, ctx.param["model_devi_jobs"][0], 0)
    assert (trust.f_lo, trust.f_hi) == (0.02, 0.3)
    assert system_trust(ctx.param, ctx.param["model_devi_jobs"][1], 0).f_lo == param["model_devi_f_trust_lo"]


def test_relative_needs_epsilon(cu_run):
    folder, param = cu_run
    param["use_relative"] = True
    with pytest.raises(ParamError, match="epsilon = None: use_relative needs a positive epsilon"):
        validate_run(param, folder)


@pytest.mark.parametrize("keep, left", [(True, [0, 1]), (1, [2]), (2, [1, 2]), (False, [0, 1, 2])])
def test_clean_traj_keeps_the_last_iterations(cu_run, keep, left):
    folder, param = cu_run
    param["model_devi_clean_traj"] = keep
    ctx = _ctx(folder, param)
    for it in range(3):
        task = folder / f"iter.{it:06d}" / "01.model_devi" / "task.000.000000"
        task.mkdir(parents=True)
        (task / "traj.dump").write_text("x")
    for it in range(3):
        clean_trajectories(ctx, it) if keep is not True or it == 2 else None
    have = [it for it in range(3) if (folder / f"iter.{it:06d}/01.model_devi/task.000.000000/traj.dump").exists()]
    assert have == left


def test_model_type_map_must_match(cu_run):
    folder, param = cu_run
    param["type_map"] = ["Cu", "Al"]
    param["default_training_param"]["model"]["type_map"] = ["Al", "Cu"]
    with pytest.raises(ParamError, match=r"default_training_param.model.type_map = \['Al', 'Cu'\] differs"):
        validate_run(param, folder)
