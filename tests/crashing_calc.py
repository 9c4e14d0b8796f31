"""An ASE calculator for tests: EMT that crashes (raises) on small cells, like a DFT code dying."""

from ase.calculators.emt import EMT


class CrashingEMT(EMT):
    """EMT, but raises RuntimeError when the cell volume is below ``min_volume`` (Å^3)."""

    def __init__(self, min_volume: float, **kwargs):
        super().__init__(**kwargs)
        self.min_volume = min_volume

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        if atoms is not None and atoms.get_volume() < self.min_volume:
            raise RuntimeError(f"cell volume {atoms.get_volume():.1f} Å^3 < {self.min_volume}: SCF diverged")
        super().calculate(atoms, properties, system_changes)
