"""The autotest registries: interaction types (calculators) and properties."""

from ..registry import Registry

CALCULATORS = Registry("dpgen_lite.autotest.calculators", "interaction type")
PROPERTIES = Registry("dpgen_lite.autotest.properties", "property type")
