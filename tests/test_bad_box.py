"""fp_skip_bad_box: DP-GEN's syntax parsed strictly, DP-GEN's criteria, wired into make_fp and validation."""

import json
import logging

import numpy as np
import pytest

from dpgen_lite.context import FP, MODEL_DEVI, Context
from dpgen_lite.explore.outcome import TRAJ_FILE
from dpgen_lite.label.bad_box import box_ratios, is_bad_box, parse_skip_bad_box
from dpgen_lite.label.stage import make_fp
from dpgen_lite.select.stage import SELECTION
from tests.conftest import write_param


def test_parse_dpgen_syntax():
    assert parse_skip_bad_box("length_ratio:5;height_ratio:5") == {"length_ratio": 5.0, "height_ratio": 5.0}
    assert parse_skip_bad_box(" length_ratio : 6 ; ") == {"length_ratio": 6.0}
    assert parse_skip_bad_box("wrap_ratio:0.5;tilt_ratio:0.5") == {"wrap_ratio": 0.5, "tilt_ratio": 0.5}


@pytest.mark.parametrize("spec, expected", [
    ("lenght_ratio:5", ["'lenght_ratio'", "length_ratio, height_ratio, wrap_ratio, tilt_ratio"]),
    ("length_ratio=5", ["'length_ratio=5'", "key:value"]),
    ("length_ratio:five", ["length_ratio = 'five'", "positive number"]),
    ("height_ratio:-1", ["height_ratio = '-1'", "positive"]),
    ("length_ratio:5;length_ratio:6", ["given twice"]),
    ("", ["expected e.g."]),
])
def test_parse_errors_name_key_value_and_allowed(spec, expected):
    with pytest.raises(ValueError) as err:
        parse_skip_bad_box(spec)
    for fragment in expected:
        assert fragment in str(err.value), (fragment, str(err.value))


def test_length_ratio():
    criteria = parse_skip_bad_box("length_ratio:5")
    assert not is_bad_box(np.diag([10.0, 10.0, 10.0]), criteria)
    assert not is_bad_box(np.diag([2.0, 10.0, 10.0]), criteria)  # exactly 5: not above the threshold
    assert is_bad_box(np.diag([1.9, 10.0, 10.0]), criteria)
    assert box_ratios(np.diag([2.0, 4.0, 8.0]))["length_ratio"] == pytest.approx(4.0)


def test_height_ratio_catches_a_flattened_box_with_equal_lengths():
    """Three 10 Å vectors, c tilted until the ab layers are 1 Å apart: lengths agree, heights do not."""
    cz = 1.0
    cell = np.array([[10.0, 0, 0], [0, 10.0, 0], [0, np.sqrt(100 - cz ** 2), cz]])
    ratios = box_ratios(cell)
    assert ratios["length_ratio"] == pytest.approx(1.0)
    # smallest height = volume / |a x b| = 100 cz / 100 = cz
    assert ratios["height_ratio"] == pytest.approx(10.0 / cz)
    assert not is_bad_box(cell, parse_skip_bad_box("length_ratio:5"))
    assert is_bad_box(cell, parse_skip_bad_box("length_ratio:5;height_ratio:5"))
    assert not is_bad_box(np.diag([10.0, 10.0, 10.0]), parse_skip_bad_box("height_ratio:1.01"))


def test_wrap_and_tilt_ratio():
    cell = np.array([[10.0, 0, 0], [6.0, 8.0, 0], [0, 0, 10.0]])
    assert box_ratios(cell)["wrap_ratio"] == pytest.approx(0.6)
    assert box_ratios(cell)["tilt_ratio"] == pytest.approx(0.75)
    assert is_bad_box(cell, {"tilt_ratio": 0.5}) and not is_bad_box(cell, {"wrap_ratio": 0.7})
    flat = np.array([[1.0, 0, 0], [0, 1.0, 0], [1.0, 1.0, 0]])  # zero volume
    assert box_ratios(flat)["height_ratio"] == np.inf and is_bad_box(flat, {"height_ratio": 5})
    with pytest.raises(ValueError, match="shape"):
        is_bad_box(np.eye(2), {"length_ratio": 5})


def _dump(boxes) -> str:
    """A LAMMPS text dump of 4 fcc Cu atoms per frame in orthogonal boxes (Å)."""
    out = []
    for step, (lx, ly, lz) in enumerate(boxes):
        out += ["ITEM: TIMESTEP", str(step * 10), "ITEM: NUMBER OF ATOMS", "4",
                "ITEM: BOX BOUNDS pp pp pp", f"0 {lx}", f"0 {ly}", f"0 {lz}", "ITEM: ATOMS id type x y z"]
        for i, (x, y, z) in enumerate([(0, 0, 0), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)]):
            out.append(f"{i + 1} 1 {x * lx} {y * ly} {z * lz}")
    return "\n".join(out) + "\n"


def test_make_fp_skips_bad_boxes(tmp_path, caplog):
    param = {"type_map": ["Cu"], "fp_style": "ase", "fp_params": {"calculator": "ase.calculators.emt.EMT"},
             "fp_skip_bad_box": "length_ratio:5;height_ratio:5"}
    ctx = Context(param, {}, tmp_path)
    md_task = f"{ctx.rel(0, MODEL_DEVI)}/task.000.000000"
    (tmp_path / md_task).mkdir(parents=True)
    (tmp_path / md_task / TRAJ_FILE).write_text(_dump([(3.61, 3.61, 3.61), (3.0, 3.3, 19.0), (3.7, 3.6, 3.5)]))
    ctx.path(0, FP).mkdir(parents=True)
    chosen = [[md_task, 0, 0], [md_task, 10, 1], [md_task, 20, 2]]
    (ctx.path(0, FP) / SELECTION).write_text(json.dumps({"systems": {"0": {"chosen": chosen}}}))
    with caplog.at_level(logging.INFO, logger="dpgen_lite"):
        make_fp(ctx, 0)
    tasks = sorted(ctx.path(0, FP).glob("task.*"))
    assert [t.name for t in tasks] == ["task.000.000000", "task.000.000001"]
    assert [json.loads((t / "fp_task.json").read_text())["source"]["step"] for t in tasks] == [0, 20]
    assert "1 candidates with a bad box skipped" in caplog.text
    assert f"{md_task} step 10" in caplog.text


def test_bad_spec_fails_validation(cu_run):
    from dpgen_lite.cli import load_run_param
    from dpgen_lite.params import ParamError
    folder, param = cu_run
    param["fp_skip_bad_box"] = "length_ratio:5;volume_ratio:2"
    with pytest.raises(ParamError, match="fp_skip_bad_box.*'volume_ratio'.*allowed length_ratio"):
        load_run_param(str(write_param(folder, param)), folder)
