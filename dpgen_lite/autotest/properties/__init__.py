"""Properties: one class per file, registered by ``type`` (relaxation, eos, elastic, vacancy, ...)."""
