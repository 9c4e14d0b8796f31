"""Exploration: LAMMPS inputs (:mod:`.lammps`) and templates (:mod:`.template`), the model-deviation
MD steps (:mod:`.stage`) and what their tasks left, crashes included (:mod:`.outcome`)."""
