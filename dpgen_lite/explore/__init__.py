"""Exploration: the engine seam (:mod:`.base`), the LAMMPS engine (:mod:`.lammps`, its DP-GEN
templates :mod:`.template`), the ASE engine (:mod:`.ase_md`, its task program
:mod:`.ase_md_runner`), the model-deviation MD steps (:mod:`.stage`) and what their tasks
left, crashes included (:mod:`.outcome`)."""
