"""The bottom of the import graph: the input error, the dargs helpers and the file loader.

Every module that checks user input raises :class:`ParamError`, whose message names the
key, the value found and what is allowed.  Nothing here imports a stage.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from dargs import Argument
from dargs.dargs import ArgumentError


class ParamError(ValueError):
    """Invalid input file: the message names the key, the value and the fix."""


def arg(name: str, dtype, doc: str, **kw) -> Argument:
    """A dargs ``Argument``, optional when it has a ``default`` (or ``optional=True``)."""
    return Argument(name, dtype, optional="default" in kw or kw.pop("optional", False), doc=doc, **kw)


def require(cond: bool, message: str) -> None:
    """Raise :class:`ParamError` with ``message`` unless ``cond``."""
    if not cond:
        raise ParamError(message)


def instantiate(path: str, kwargs: dict, key: str, example: str):
    """An instance of the class at import path ``path`` (``pkg.module.Class``) built with ``kwargs``
    (an ASE calculator or constraint named in ``param.json``).

    Raises
    ------
    ParamError
        naming ``key``, when the class cannot be imported or built; ``example`` is a valid path.
    """
    module_name, _, cls_name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ParamError(f"{key} = {path!r} cannot be imported ({err}); give the full import path of a "
                         f"class, e.g. {example!r}") from err
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ParamError(f"{key} = {path!r} with kwargs {kwargs}: {err}") from err


def load_file(path: Path) -> dict:
    """Read a JSON or YAML file into a dict.

    Raises
    ------
    ParamError
        if the file is missing or not valid JSON/YAML.
    """
    path = Path(path)
    if not path.is_file():
        raise ParamError(f"{path}: no such file")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml
            return yaml.safe_load(text)
        return json.loads(text)
    except Exception as err:  # json.JSONDecodeError, yaml.YAMLError
        raise ParamError(f"{path}: not valid {path.suffix[1:].upper() or 'JSON'}: {err}") from err


def normalize(argument: Argument, data: dict, name: str) -> dict:
    """Check ``data`` strictly against ``argument`` (unknown keys are errors) and fill defaults.

    Keys starting with ``_`` are comments and are dropped first, at every depth.

    Raises
    ------
    ParamError
        naming the key path, the value and the allowed type or the closest known key.
    """
    try:
        data = argument.normalize_value(data, trim_pattern="_*")
        data = argument.normalize_value(data)  # fills the keys of sub-sections that took a default
        argument.check_value(data, strict=True)
    except (ArgumentError, KeyError, TypeError, ValueError) as err:
        raise ParamError(f"{name}: {err}") from None
    return data
