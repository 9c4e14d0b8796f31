"""Labelling: fp styles behind one interface (:mod:`.base`), and the fp steps (:mod:`.stage`).

The package imports nothing heavy, so the task-side ``ase_runner`` starts fast; the
styles register themselves when :func:`.base.get_style` first imports them.
"""
