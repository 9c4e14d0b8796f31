"""Autotest: material properties of a crystal computed with any interaction, compared with a reference.

Layout (DP-GEN's): ``confs/<conf>/relaxation/relax_task`` then ``confs/<conf>/<type>_<suffix>/task.NNNNNN``;
each property folder gets ``result.json`` (machine-readable, units in the keys) and ``result.out``.
Calculators live in :mod:`dpgen_lite.autotest.calculators`, properties in
:mod:`dpgen_lite.autotest.properties`, each one class in one file registered by name.
"""
