"""Selection: model deviation and trust levels (:mod:`.model_devi`), the select step (:mod:`.stage`)."""
