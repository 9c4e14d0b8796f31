"""Which candidates get an fp task: one registered rule per module (:mod:`.base`)."""
