"""Unit conversions (CODATA 2018 via ASE's constants) used across autotest."""

from ase import units

#: eV/Å^3 -> GPa
EV_A3_TO_GPA = 1.0 / units.GPa
#: eV/Å^2 -> J/m^2
EV_A2_TO_J_M2 = units._e * 1e20
#: bar -> GPa
BAR_TO_GPA = 1e-4
