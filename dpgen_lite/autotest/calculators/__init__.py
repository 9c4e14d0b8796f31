"""Calculators (the ``interaction`` of ``param.json``): one class per file, registered by ``type``."""
