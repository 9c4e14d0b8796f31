"""ASE objects for tests: EMT that crashes (raises) like a DFT code dying, a constraint that fails midway."""

from pathlib import Path

from ase.calculators.emt import EMT
from ase.constraints import FixAtoms


class CrashingEMT(EMT):
    """EMT, but raises RuntimeError when the cell volume is below ``min_volume`` (Å^3) or
    when it runs in a folder named in ``crash_in`` (an fp task's folder)."""

    def __init__(self, min_volume: float = 0.0, crash_in: list[str] = (), **kwargs):
        super().__init__(**kwargs)
        self.min_volume = min_volume
        self.crash_in = set(crash_in)

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        if atoms is not None and atoms.get_volume() < self.min_volume:
            raise RuntimeError(f"cell volume {atoms.get_volume():.1f} Å^3 < {self.min_volume}: SCF diverged")
        if Path.cwd().name in self.crash_in:
            raise RuntimeError(f"{Path.cwd().name}: the licence server is down")
        super().calculate(atoms, properties, system_changes)


class CrashingFixAtoms(FixAtoms):
    """FixAtoms that raises after ``after`` position updates when it runs in a folder named in
    ``crash_in`` (an MD task's folder): an MD blowing up midway."""

    def __init__(self, indices, after: int = 0, crash_in: list[str] = ()):
        super().__init__(indices=indices)
        self.after, self.crash_in, self.calls = after, set(crash_in), 0

    def adjust_positions(self, atoms, new):
        self.calls += 1
        if Path.cwd().name in self.crash_in and self.calls > self.after:
            raise RuntimeError(f"{Path.cwd().name}: atoms flew apart")
        super().adjust_positions(atoms, new)
