"""Training: deepmd-kit inputs (:mod:`.deepmd`) and the train steps (:mod:`.stage`)."""
