"""Shared test helpers: small real Cu data sets labelled with ASE's EMT, example parameters."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import ase.build
import dpdata
import numpy as np
import pytest
from ase.calculators.emt import EMT

from dpgen_lite.dispatch import THREAD_ENVS, executable

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
FIXTURES = Path(__file__).resolve().parent / "fixtures"  # recorded DFT outputs, see fixtures/README.md

# dpdispatcher writes ~/.dpdispatcher at import: keep it inside the test session
os.environ.setdefault("DPGEN_LITE_TEST_HOME", "1")


def emt_frames(n: int, seed: int = 0, atoms=None) -> dpdata.LabeledSystem:
    """``n`` perturbed 32-atom fcc Cu frames labelled by EMT (eV, eV/Å)."""
    rng = np.random.default_rng(seed)
    base = atoms if atoms is not None else ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    out = None
    for _ in range(n):
        a = base.copy()
        a.rattle(0.08, seed=int(rng.integers(1 << 30)))
        a.calc = EMT()
        a.get_potential_energy()
        frame = dpdata.LabeledSystem(a, fmt="ase/structure", type_map=["Cu"])
        out = frame if out is None else out + frame
    return out


@pytest.fixture
def cu_run(tmp_path):
    """A run folder with Cu init data, two POSCARs and a small valid param.json (returned as dict)."""
    emt_frames(6).to("deepmd/npy", str(tmp_path / "init"))
    conf = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    for k in range(2):
        (tmp_path / "confs" / f"{k:03d}").mkdir(parents=True)
        conf.write(tmp_path / "confs" / f"{k:03d}" / "POSCAR", format="vasp")
    (tmp_path / "confs" / "al").mkdir()
    ase.build.bulk("Al", "fcc", a=4.05, cubic=True).write(tmp_path / "confs" / "al" / "POSCAR", format="vasp")
    param = json.loads((EXAMPLES / "cu_emt" / "param.json").read_text())
    param.update(
        init_data_prefix="", init_data_sys=["init"], sys_configs_prefix="confs",
        sys_configs=[["00[01]/POSCAR"]], final_training=None, test_data_sys=[],
    )
    return tmp_path, param


def write_param(folder: Path, param: dict, name: str = "param.json") -> Path:
    """Write ``param`` as JSON into ``folder``; return the path."""
    path = folder / name
    path.write_text(json.dumps(param, indent=1))
    return path


def copy_example(name: str, dest: Path) -> Path:
    """Copy ``examples/<name>`` into ``dest``; return the copy."""
    shutil.copytree(EXAMPLES / name, dest)
    return dest


THREADS = {k: "1" for k in THREAD_ENVS}  # as the embedded machine sets them, one thread per job


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> list[Path]:
    """Two DeePMD models of Cu (the quickstart's network), 30 training steps on EMT frames
    each, different seeds: ``dp --tf train`` and ``dp --tf freeze``."""
    folder = tmp_path_factory.mktemp("models")
    emt_frames(6).to("deepmd/npy", str(folder / "data"))
    out = []
    for k in range(2):
        work = folder / str(k)
        work.mkdir()
        train = json.loads((EXAMPLES / "cu_emt" / "param.json").read_text())["default_training_param"]
        train["model"]["descriptor"]["seed"] = train["model"]["fitting_net"]["seed"] = k + 1
        train["training"].update(numb_steps=30, disp_freq=10, save_freq=30, seed=k + 1,
                                 training_data={"systems": ["../data"], "batch_size": 1})
        train["learning_rate"]["decay_steps"] = 10
        (work / "input.json").write_text(json.dumps(train))
        env = {**os.environ, **THREADS}
        for args in (["train", "input.json"], ["freeze", "-o", "graph.pb"]):
            subprocess.run([executable("dp"), "--tf", *args], cwd=work, check=True, env=env, capture_output=True)
        out.append(work / "graph.pb")
    return out
