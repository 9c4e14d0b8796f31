"""Name -> class registries (fp styles, exploration engines, calculators, properties), each filled by
importing every module of a package: adding a plugin is adding one module that registers its class."""

from __future__ import annotations

import importlib
import pkgutil


class Registry(dict):
    """``name -> class``; :meth:`load` imports every module of ``package`` (each registers its classes).

    Parameters
    ----------
    package : dotted name of the package whose modules register classes
    what : word used in error messages ("property", "interaction type")
    """

    def __init__(self, package: str, what: str):
        super().__init__()
        self.package = package
        self.what = what
        self._loaded = False

    def register(self, cls):
        """Class decorator: add ``cls`` under ``cls.name``."""
        self[cls.name] = cls
        return cls

    def load(self) -> "Registry":
        """Import every module of the package once; return self."""
        if not self._loaded:
            pkg = importlib.import_module(self.package)
            for info in pkgutil.iter_modules(pkg.__path__):
                importlib.import_module(f"{self.package}.{info.name}")
            self._loaded = True
        return self

    def get(self, name: str):  # noqa: D401 - dict-like
        """The class registered as ``name``.

        Raises
        ------
        KeyError
            naming the unknown ``name`` and the known ones.
        """
        self.load()
        if name not in self:
            raise KeyError(f"unknown {self.what} {name!r}; known: {', '.join(sorted(self))}")
        return self[name]


