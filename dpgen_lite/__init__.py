"""dpgen_lite: concurrent learning of Deep Potential models (train -> explore -> select -> label)."""

__version__ = "0.1.0"
