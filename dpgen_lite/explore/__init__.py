"""Exploration: LAMMPS inputs (:mod:`.lammps`) and the model-deviation MD steps (:mod:`.stage`)."""
