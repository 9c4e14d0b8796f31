"""Selection: model deviation, classification and streaming reading (:mod:`.model_devi`), trust
levels per system, per job, relative and adaptive (:mod:`.trust`), the pick rules choosing the
candidates to label (:mod:`.rules`), the select step (:mod:`.stage`)."""
