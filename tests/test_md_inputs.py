"""The LAMMPS input of a job without template: every ensemble and the keys model_devi_dt, dt,
trj_freq, nsteps, neidelay, taut and taup, read back from the input.lammps that make_model_devi writes."""

import pytest

from dpgen_lite.explore.stage import make_model_devi

from .test_template import setup, task_files


def native_job(**kw) -> dict:
    return {"sys_idx": [0], "temps": [300, 600], "press": [1.0, 1000.0], "nsteps": 40, "trj_freq": 10,
            "ensemble": "nvt", **kw}


def lines_of(ctx, name: str = "task.000.000000") -> list[str]:
    return task_files(ctx, name)[0].splitlines()


@pytest.mark.parametrize("ensemble, fix, n_tasks", [
    ("nvt", "fix 1 all nvt temp ${TEMP} ${TEMP} 0.2", 2),
    ("nve", "fix 1 all nve", 2),
    ("npt", "fix 1 all npt temp ${TEMP} ${TEMP} 0.2 iso ${PRES} ${PRES} 2.0", 4),
    ("npt-iso", "fix 1 all npt temp ${TEMP} ${TEMP} 0.2 iso ${PRES} ${PRES} 2.0", 4),
    ("npt-aniso", "fix 1 all npt temp ${TEMP} ${TEMP} 0.2 aniso ${PRES} ${PRES} 2.0", 4),
    ("npt-tri", "fix 1 all npt temp ${TEMP} ${TEMP} 0.2 tri ${PRES} ${PRES} 2.0", 4),
])
def test_each_ensemble(cu_run, ensemble, fix, n_tasks):
    """The fix of each ensemble with taut / taup (ps); one task per temperature (K), and per
    pressure (bar) for the npt ones; the box is made triclinic (npt-tri tilts it)."""
    folder, param = cu_run
    ctx = setup(folder, param, [native_job(ensemble=ensemble, taut=0.2, taup=2.0)], sys_configs=[["000/POSCAR"]])
    make_model_devi(ctx, 0)
    tasks = sorted(p.name for p in ctx.path(0, "01.model_devi").glob("task.*"))
    assert tasks == [f"task.000.{i:06d}" for i in range(n_tasks)]
    lines = lines_of(ctx, tasks[-1])
    assert fix in lines and "change_box all triclinic" in lines
    assert "variable TEMP equal 600" in lines
    assert ("variable PRES equal 1000.0" if ensemble.startswith("npt") else "variable PRES equal 1.0") in lines


def test_time_step_frequency_steps_and_neighbour_delay(cu_run):
    """model_devi_dt (ps) unless the job's dt; trj_freq sets the deviation rows, the dump and
    the thermo output alike; nsteps; neidelay is neigh_modify delay."""
    folder, param = cu_run
    jobs = [native_job(trj_freq=5, nsteps=40, neidelay=3), native_job(dt=0.0005)]
    ctx = setup(folder, param, jobs, sys_configs=[["000/POSCAR"]], model_devi_dt=0.004)
    make_model_devi(ctx, 0)
    lines = lines_of(ctx)
    assert "timestep 0.004" in lines and "variable NSTEPS equal 40" in lines and "run ${NSTEPS} upto" in lines
    assert "pair_style deepmd ../graph.000.pb ../graph.001.pb out_freq 5 out_file model_devi.out" in lines
    assert "dump 1 all custom 5 traj.dump id type x y z fx fy fz" in lines and "thermo 5" in lines
    assert "neigh_modify delay 3" in lines
    make_model_devi(ctx, 1)
    lines = task_files(ctx, "task.000.000000", iteration=1)[0].splitlines()
    assert "timestep 0.0005" in lines and "thermo 10" in lines
    assert not any(line.startswith("neigh_modify delay") for line in lines)


def test_velocity_seeds_differ_between_tasks_and_repeat(cu_run):
    """Each task's velocity seed comes from (iteration, system, task): the same on a remake."""
    folder, param = cu_run
    ctx = setup(folder, param, [native_job()], sys_configs=[["00[01]/POSCAR"]])
    make_model_devi(ctx, 0)
    seeds = [next(line for line in lines_of(ctx, f"task.000.{i:06d}") if line.startswith("velocity"))
             for i in range(4)]
    assert len(set(seeds)) == 4
    make_model_devi(ctx, 0)
    assert next(line for line in lines_of(ctx) if line.startswith("velocity")) == seeds[0]
