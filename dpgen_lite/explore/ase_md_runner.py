"""Task-side program of the ``ase`` exploration engine: ``python -m dpgen_lite.explore.ase_md_runner``.

Runs, in the current folder, ASE molecular dynamics of ``POSCAR`` driven by the first model
of the ensemble as an ASE calculator (deepmd-kit's ``deepmd.calculator.DP``), with the
settings of ``ase_md.json`` (:data:`SETTINGS`; written by :mod:`.ase_md`).  Every
``trj_freq`` steps, step 0 included, it appends the frame (positions Å, cell Å, forces eV/Å,
energy eV, stress) to ``traj.traj`` (ASE trajectory) and then the model deviation of every
model of the ensemble (deepmd-kit's ``calc_model_devi``: virial deviation per atom, eV, and
force deviation, eV/Å, relative with ``relative``/``relative_v`` as ``pair_style deepmd``) to
``model_devi.out`` in LAMMPS's 7 columns, so frame k of the trajectory is row k of the file.

Ensembles (units: K, bar, ps): ``nve`` velocity Verlet; ``nvt`` Nosé-Hoover chain
(``ase.md.nose_hoover_chain.NoseHooverChainNVT``, damping ``taut``); ``npt``/``npt-i``/
``npt-iso`` isotropic and ``npt-t``/``npt-tri`` fully flexible cell MTK barostats
(``IsotropicMTKNPT``, ``MTKNPT``, damping ``taup``), as LAMMPS's ``fix npt``.  Initial
velocities: Maxwell-Boltzmann at ``temp`` from ``seed``, without net momentum or rotation
(LAMMPS's ``velocity ... mom yes rot yes``).  ``constraints`` are ASE constraint classes by
import path (``ase.constraints.FixAtoms`` holds a slab's bottom layers).

An error (non-finite positions or deviations, a calculator failure) prints ``ERROR: ...`` to
standard error and exits 1; the frames written before it stay.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

import numpy as np

SETTINGS = "ase_md.json"
TRAJ_FILE = "traj.traj"
MODEL_DEVI_FILE = "model_devi.out"
#: LAMMPS's ``pair_style deepmd`` header of ``model_devi.out``
HEADER = "#" + f"{'step':>11s}" + "".join(f"{c:>19s}" for c in (
    "max_devi_v", "min_devi_v", "avg_devi_v", "max_devi_f", "min_devi_f", "avg_devi_f"))


def integrator(atoms, s: dict):
    """The ASE dynamics of ensemble ``s["ensemble"]`` at ``s["temp"]`` K / ``s["press"]`` bar,
    time step ``s["dt"]`` ps, dampings ``s["taut"]``/``s["taup"]`` ps.

    Raises
    ------
    ValueError
        for an ensemble the engine does not run.
    """
    from ase import units
    from ase.md.nose_hoover_chain import IsotropicMTKNPT, MTKNPT, NoseHooverChainNVT
    from ase.md.verlet import VelocityVerlet

    ps = 1000 * units.fs
    dt, ensemble = s["dt"] * ps, s["ensemble"]
    if ensemble == "nve":
        return VelocityVerlet(atoms, timestep=dt)
    if ensemble == "nvt":
        return NoseHooverChainNVT(atoms, timestep=dt, temperature_K=s["temp"], tdamp=s["taut"] * ps)
    barostat = {"npt": IsotropicMTKNPT, "npt-i": IsotropicMTKNPT, "npt-iso": IsotropicMTKNPT,
                "npt-t": MTKNPT, "npt-tri": MTKNPT}.get(ensemble)
    if barostat is None:
        raise ValueError(f"ensemble {ensemble!r}: not run by the ase engine")
    return barostat(atoms, timestep=dt, temperature_K=s["temp"], pressure_au=s["press"] * units.bar,
                    tdamp=s["taut"] * ps, pdamp=s["taup"] * ps)


class Recorder:
    """Observer writing one trajectory frame and one deviation row per call.

    Parameters
    ----------
    atoms : the MD's atoms (their calculator's results are stored with the frame)
    dyn : the dynamics (its ``nsteps`` is the step)
    models : the ensemble as ``deepmd.infer.DeepPot``
    s : the settings (``relative``, ``relative_v``, ``nopbc``)
    """

    def __init__(self, atoms, dyn, models, s: dict, traj, devi):
        self.atoms, self.dyn, self.models, self.s, self.traj, self.devi = atoms, dyn, models, s, traj, devi
        type_map = models[0].get_type_map()
        self.atype = np.array([type_map.index(e) for e in atoms.get_chemical_symbols()])

    def __call__(self) -> None:
        from deepmd.infer.model_devi import calc_model_devi

        step = self.dyn.nsteps
        coord = self.atoms.get_positions().reshape(1, -1)
        if not np.isfinite(coord).all():
            raise FloatingPointError(f"non-finite positions at step {step}")
        box = None if self.s["nopbc"] else self.atoms.cell.array.reshape(1, 9)
        row = calc_model_devi(coord, box, self.atype, self.models, relative=self.s["relative"],
                              relative_v=self.s["relative_v"])[0, :7]
        if not np.isfinite(row).all():
            raise FloatingPointError(f"non-finite model deviation at step {step}")
        row[0] = step
        self.traj.write(self.atoms)
        self.devi.write(f"{step:12d}" + "".join(f"{v:19.6e}" for v in row[1:]) + "\n")
        self.devi.flush()


def run(s: dict) -> None:
    """Run the MD of settings ``s`` (:data:`SETTINGS`) in the current folder."""
    import ase.io
    from ase.io.trajectory import Trajectory
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation
    from deepmd.calculator import DP
    from deepmd.infer import DeepPot

    from ..params import instantiate

    atoms = ase.io.read("POSCAR", format="vasp")
    if s["nopbc"]:
        atoms.pbc = False
    atoms.set_constraint([instantiate(c["class"], c.get("kwargs", {}), "constraints", "ase.constraints.FixAtoms")
                          for c in s["constraints"]])
    atoms.calc = DP(model=s["models"][0])
    models = [DeepPot(m) for m in s["models"]]
    MaxwellBoltzmannDistribution(atoms, temperature_K=s["temp"], rng=np.random.default_rng(s["seed"]))
    Stationary(atoms)
    ZeroRotation(atoms)
    dyn = integrator(atoms, s)
    with Trajectory(TRAJ_FILE, "w", atoms) as traj, open(MODEL_DEVI_FILE, "w") as devi:
        devi.write(HEADER + "\n")
        dyn.attach(Recorder(atoms, dyn, models, s, traj, devi), interval=s["trj_freq"])
        dyn.run(s["nsteps"])


def main() -> None:
    """Run the MD; on an error print ``ERROR: <message>`` to standard error and exit 1."""
    with open(SETTINGS) as fh:
        settings = json.load(fh)
    for name in (TRAJ_FILE, MODEL_DEVI_FILE):  # a rerun's outputs only
        if os.path.exists(name):
            os.remove(name)
    try:
        run(settings)
    except Exception as err:  # the task's program failed: its frames so far are kept
        traceback.print_exc()
        print(f"ERROR: {type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
