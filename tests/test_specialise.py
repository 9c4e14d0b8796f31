"""``dpgen specialise``: the ranking of property errors, the before/after table, bad input (fast);
the whole command on a finished run is in tests/test_final.py::test_final_pipeline."""

import json

import pytest

from dpgen_lite.context import Context
from dpgen_lite.params import ParamError
from dpgen_lite.train.specialise import (Specialise, before_after, property_errors, reference_interaction,
                                         table_csv, table_markdown)


def result(values: dict) -> dict:
    """A gathered result.json of one structure: {folder: (type, result)}."""
    return {"confs": {"confs/fcc": {folder: {"type": kind, **res} for folder, (kind, res) in values.items()}}}


def eos(b0: float) -> tuple[str, dict]:
    return "eos", {"V0_A3_per_atom": 11.8, "B0_GPa": b0, "B0_prime": 5.0}


REF = result({"vacancy_00": ("vacancy", {"formation_energy_eV": 1.0}), "eos_00": eos(140.0)})


def test_property_errors_worst_first():
    model = result({"vacancy_00": ("vacancy", {"formation_energy_eV": 0.5}), "eos_00": eos(126.0)})
    ranked = property_errors({"reference": REF, "model": model})
    assert [e["property"] for e in ranked] == ["vacancy_00", "eos_00"]
    assert ranked[0]["error_pct"] == pytest.approx(50.0)
    assert ranked[1]["error_pct"] == pytest.approx(10.0)  # the largest of its quantities: B0
    assert ranked[1]["quantities"]["EOS B0 (GPa)"]["model"] == 126.0
    assert ranked[1]["quantities"]["EOS V0 (Å³/atom)"]["error_pct"] == 0.0


def test_before_after_table():
    before = [{"structure": "s", "property": "vacancy_00", "error_pct": 40.0,
               "quantities": {"E_f (eV)": {"reference": 1.0, "model": 0.6, "error_pct": 40.0}}}]
    after = [{"structure": "s", "property": "vacancy_00", "error_pct": 10.0,
              "quantities": {"E_f (eV)": {"reference": 1.0, "model": 0.9, "error_pct": 10.0}}}]
    table = before_after(before, after, picked=before)
    row, = table["rows"]
    assert row["picked"] and row["ratio"] == pytest.approx(0.25) and row["after"] == 0.9
    md = table_markdown(table).splitlines()
    assert md[0].startswith("| structure | property") and md[2].split("|")[4].strip() == "yes"
    assert table_csv(table).splitlines()[1] == "s,vacancy_00,E_f (eV),yes,1,0.6,40,0.9,10,0.25"


def test_reference_is_the_fp_style():
    ase_ref = reference_interaction({"fp_style": "ase", "type_map": ["Cu"],
                                     "fp_params": {"calculator": "ase.calculators.emt.EMT", "kwargs": {}}})
    assert ase_ref == {"name": "reference", "type": "ase", "calculator": "ase.calculators.emt.EMT", "kwargs": {},
                       "type_map": ["Cu"]}
    cp2k = reference_interaction({"fp_style": "cp2k", "type_map": ["Al"], "user_fp_params": {"FORCE_EVAL": {}},
                                  "fp_params": None})
    assert cp2k == {"name": "reference", "type": "fp", "type_map": ["Al"], "fp_style": "cp2k",
                    "user_fp_params": {"FORCE_EVAL": {}}}


@pytest.mark.parametrize("autotest, keys, message", [
    ({"interaction": {"type": "deepmd"}}, {}, "autotest file: interaction = "),
    ({"reference": "emt"}, {}, "autotest file: reference = 'emt'"),
    ({}, {"top": 0}, "--top = 0: must be >= 1"),
    ({}, {"weight": 0.0}, "--weight = 0.0: must be > 0"),
    ({}, {"guard_weight": -1.0}, "--guard-weight = -1.0: must be >= 0"),
    ({}, {"n_perturb": -1}, "--perturb = -1: must be >= 0"),
    ({}, {"guard_labels": "emt"}, "--guard-labels = 'emt': must be one of model, fp"),
])
def test_bad_input_refused(tmp_path, autotest, keys, message):
    ctx = Context({"final_training": {}, "type_map": ["Cu"]}, {}, tmp_path)
    with pytest.raises(ParamError, match=message.replace("(", r"\(")):
        Specialise(ctx, {"structures": ["confs/*"], **autotest}, tmp_path, **keys)


def test_unfinished_run_refused(tmp_path):
    (tmp_path / "record.dpgen").write_text("0 0\n0 1\n")
    ctx = Context({"final_training": {"numb_steps": 10}, "type_map": ["Cu"]}, {}, tmp_path)
    with pytest.raises(ParamError, match=r"final stage has not ended \(record.dpgen's last line \(0, 1\)\)"):
        Specialise(ctx, json.loads('{"structures": ["confs/*"]}'), tmp_path)
