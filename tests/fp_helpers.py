"""Test data shared by the DFT fp-style tests: a mixed frame and pseudopotential files with real headers."""

import json
import shutil
from pathlib import Path

import ase.build
import dpdata
import numpy as np
import pytest

from dpgen_lite.label.base import FpTaskFailed
from tests.conftest import EXAMPLES, write_param

#: Mg is in type_map but absent from the frame
TYPE_MAP = ["Al", "Mg", "Cu"]


def mixed_frame() -> dpdata.System:
    """One frame of 8 atoms, Cu and Al interleaved (Cu first), in a sheared, non-orthogonal cell (Å)."""
    atoms = ase.build.bulk("Cu", "fcc", a=3.61).repeat((2, 2, 2))
    for i in (1, 4, 6):
        atoms[i].symbol = "Al"
    atoms.rattle(0.05, seed=3)
    cell = np.array(atoms.cell)
    cell[2] += [0.3, -0.2, 0.1]
    atoms.set_cell(cell, scale_atoms=False)
    atoms.wrap()
    return dpdata.System(atoms, fmt="ase/structure", type_map=TYPE_MAP)


def grouped(frame: dpdata.System) -> tuple[list[str], np.ndarray]:
    """Symbols and positions (Å) of ``frame`` with atoms grouped in type_map order (stable)."""
    order = np.argsort(frame["atom_types"], kind="stable")
    return [frame["atom_names"][t] for t in frame["atom_types"][order]], frame["coords"][0][order]


def fake_potcar(path: Path, element: str, date: str = "22Jun2005") -> Path:
    """A POTCAR-like file with VASP's real header lines for ``element`` (not a usable potential)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"  PAW_PBE {element} {date}\n 11.0000000000000000\n parameters from PSCTR are:\n"
                    f"   VRHFIN ={element}: d10 p1\n   TITEL  = PAW_PBE {element} {date}\n"
                    " End of Dataset\n")
    return path


def fake_upf(path: Path, element: str) -> Path:
    """A UPF-v2-like file with a real ``PP_HEADER`` naming ``element`` (not a usable potential)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'<UPF version="2.0.1">\n  <PP_HEADER generated="test" element="{element}" '
                    'pseudo_type="NC" functional="PBE" z_valence="11.0"/>\n</UPF>\n')
    return path


def fake_orb(path: Path, element: str) -> Path:
    """An ABACUS orbital-file-like header naming ``element``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---------------------------------------------------------------------------\n"
                    f"Element                     {element}\nEnergy Cutoff(Ry)          100\n")
    return path


def example_run(folder, cu_param, example):
    """examples/<example> in the cu_run folder: its param.json with cu_run's init data and configurations."""
    param = json.loads((EXAMPLES / example / "param.json").read_text())
    param.update({k: cu_param[k] for k in ("init_data_prefix", "init_data_sys", "sys_configs_prefix", "sys_configs")})
    for f in (EXAMPLES / example).iterdir():
        if f.name not in ("param.json", "README.md"):
            shutil.copy(f, folder / f.name)
    return write_param(folder, param)


def write_task(style, tmp_path):
    """Check ``style``, write its inputs for :func:`mixed_frame` into ``tmp_path/task``: (frame, task, files)."""
    style.check()
    frame = mixed_frame()
    task = tmp_path / "task"
    task.mkdir()
    return frame, task, style.write_inputs(frame, task)


def assert_check_fails(style, expected):
    """``style.check()`` raises ValueError whose message holds every fragment of ``expected``."""
    with pytest.raises(ValueError) as err:
        style.check()
    for fragment in expected:
        assert fragment in str(err.value), (fragment, str(err.value))


def assert_fails(style, folder, reason):
    """``style.read_label(folder)`` raises FpTaskFailed matching ``reason`` and naming ``folder``."""
    with pytest.raises(FpTaskFailed, match=reason) as err:
        style.read_label(folder)
    assert str(folder) in str(err.value)
