"""LAMMPS exploration inputs: MD driven by the model ensemble, writing the model deviation.

Every task runs ``pair_style deepmd graph.000.pb graph.001.pb ... out_freq trj_freq
out_file model_devi.out`` in units ``metal`` (Å, eV, ps, bar, K) and dumps the
trajectory every ``trj_freq`` steps to ``traj.dump``, so dump frame k is row k of
``model_devi.out``.
"""

from __future__ import annotations

from pathlib import Path

ENSEMBLES = ("nvt", "nve", "npt", "npt-i", "npt-iso", "npt-a", "npt-aniso", "npt-t", "npt-tri")
TRAJ_FILE = "traj.dump"
MODEL_DEVI_FILE = "model_devi.out"

_BAROSTAT = {
    "npt": "iso", "npt-i": "iso", "npt-iso": "iso",
    "npt-a": "aniso", "npt-aniso": "aniso",
    "npt-t": "tri", "npt-tri": "tri",
}


def thermostat_fix(ensemble: str, tau_t: float, tau_p: float) -> str:
    """The LAMMPS ``fix`` line of ``ensemble`` (one of :data:`ENSEMBLES`).

    Raises
    ------
    ValueError
        for an unknown ensemble.
    """
    if ensemble == "nvt":
        return f"fix 1 all nvt temp ${{TEMP}} ${{TEMP}} {tau_t}"
    if ensemble == "nve":
        return "fix 1 all nve"
    if ensemble in _BAROSTAT:
        return (f"fix 1 all npt temp ${{TEMP}} ${{TEMP}} {tau_t} "
                f"{_BAROSTAT[ensemble]} ${{PRES}} ${{PRES}} {tau_p}")
    raise ValueError(f"ensemble = {ensemble!r} is not one of {', '.join(ENSEMBLES)}")


def lammps_input(
    *,
    models: list[str],
    masses: list[float],
    temp: float,
    press: float | None,
    ensemble: str,
    nsteps: int,
    trj_freq: int,
    dt: float,
    seed: int,
    tau_t: float = 0.1,
    tau_p: float = 0.5,
    neidelay: int | None = None,
) -> str:
    """Text of ``input.lammps`` for one exploration task reading ``conf.lmp``.

    Parameters
    ----------
    models : frozen model paths as seen from the task folder (≥ 2 for a deviation)
    masses : atomic masses in ``type_map`` order, g/mol
    temp : K;  press : bar (``npt*`` only);  dt : time step, ps
    nsteps : MD steps;  trj_freq : steps between dumped / deviation frames
    seed : velocity seed (positive integer)
    tau_t, tau_p : thermostat / barostat damping, ps
    """
    lines = [
        f"variable NSTEPS equal {nsteps}",
        f"variable TEMP equal {temp}",
        f"variable PRES equal {press if press is not None else 1.0}",
        "units metal",
        "boundary p p p",
        "atom_style atomic",
        "neighbor 1.0 bin",
        *([f"neigh_modify delay {neidelay}"] if neidelay is not None else []),
        "box tilt large",
        "read_data conf.lmp",
        "change_box all triclinic",
        *(f"mass {i + 1} {m}" for i, m in enumerate(masses)),
        f"pair_style deepmd {' '.join(models)} out_freq {trj_freq} out_file {MODEL_DEVI_FILE}",
        "pair_coeff * *",
        "thermo_style custom step temp pe ke etotal press vol lx ly lz xy xz yz",
        f"thermo {trj_freq}",
        f"dump 1 all custom {trj_freq} {TRAJ_FILE} id type x y z fx fy fz",
        "dump_modify 1 sort id",
        f"velocity all create ${{TEMP}} {seed} dist gaussian mom yes rot yes",
        thermostat_fix(ensemble, tau_t, tau_p),
        f"timestep {dt}",
        "run ${NSTEPS} upto",
    ]
    return "\n".join(lines) + "\n"
