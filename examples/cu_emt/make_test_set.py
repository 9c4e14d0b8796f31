"""The quickstart's test set: 120 frames of fcc Cu (32 atoms) from EMT molecular dynamics at
300, 600, 900 and 1200 K, labelled by EMT (energy eV, forces eV/Å, virial eV), written as
deepmd/npy to ``test_set/``.  The loop never trains on them; ``test_data_sys`` tests every
iteration's models on them.

Usage: ``python make_test_set.py [folder]`` (default ``test_set``).
"""

import sys

import ase.build
import dpdata
import numpy as np
from ase import units
from ase.calculators.emt import EMT
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

TEMPS = (300, 600, 900, 1200)  # K
FRAMES_PER_TEMP = 30
EQUILIBRATION = 300  # steps of 2 fs before the first frame
INTERVAL = 20  # steps between frames


def md_frames(temp: float, seed: int) -> dpdata.LabeledSystem:
    """``FRAMES_PER_TEMP`` EMT-labelled frames of Langevin MD at ``temp`` K."""
    atoms = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    atoms.calc = EMT()
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temp, rng=rng)
    dyn = Langevin(atoms, 2 * units.fs, temperature_K=temp, friction=0.02, fixcm=False, rng=rng)
    dyn.run(EQUILIBRATION)
    frames = None
    for _ in range(FRAMES_PER_TEMP):
        dyn.run(INTERVAL)
        frame = dpdata.LabeledSystem(atoms, fmt="ase/structure", type_map=["Cu"])
        frames = frame if frames is None else frames + frame
    return frames


def main(folder: str = "test_set") -> None:
    data = None
    for k, temp in enumerate(TEMPS):
        frames = md_frames(temp, seed=1000 + k)
        data = frames if data is None else data + frames
    data.to("deepmd/npy", folder)
    print(f"{folder}: {data.get_nframes()} EMT frames at {', '.join(map(str, TEMPS))} K")


if __name__ == "__main__":
    main(*sys.argv[1:])
