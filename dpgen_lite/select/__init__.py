"""Selection: model deviation, classification and streaming reading (:mod:`.model_devi`), trust
levels per system, per job, relative and adaptive (:mod:`.trust`), the select step (:mod:`.stage`)."""
