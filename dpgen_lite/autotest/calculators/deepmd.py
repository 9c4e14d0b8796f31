"""Deep Potential models in LAMMPS (``pair_style deepmd``, frozen or compressed ``.pb`` / ``.pth``)."""

from __future__ import annotations

import functools
import os

from .base import register
from .lammps import INPUT_FILE, LOG_FILE, NamedLammps, raw_lmp_command


@functools.lru_cache(maxsize=1)
def plugin_env() -> tuple[tuple[str, str], ...]:
    """``env`` assignments that let the bare LAMMPS binary load the DeePMD plugin: what deepmd-kit's
    ``deepmd.lmp`` module sets up for the ``lmp`` console script (LD_PRELOAD, LD_LIBRARY_PATH of the
    TensorFlow / CUDA runtime libraries, LAMMPS_PLUGIN_PATH), computed once here instead of in every
    task (the console script imports deepmd-kit at each start: ~5 s instead of ~0.1 s)."""
    saved = {k: os.environ.get(k) for k in ("LD_PRELOAD", "LD_LIBRARY_PATH")}
    try:
        import deepmd.lmp as lmp
        env = {"LD_PRELOAD": os.environ.get("LD_PRELOAD", ""), "LAMMPS_PLUGIN_PATH": lmp.get_op_dir(),
               # the folders deepmd.lmp appended to LD_LIBRARY_PATH
               "library_path": os.environ.get("LD_LIBRARY_PATH", "").removeprefix(saved["LD_LIBRARY_PATH"] or "")}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    env["library_path"] = env["library_path"].strip(":")
    return tuple(env.items())


@register
class Deepmd(NamedLammps):
    """``pair_style deepmd ../<model>``; ``pair_coeff * * <elements>`` (types mapped by name).

    The task runs the LAMMPS binary of the ``lammps`` package with the DeePMD plugin loaded
    (:func:`plugin_env`); ``interaction.command`` or the machine's command (e.g. ``lmp``) override it.
    """

    name = "deepmd"

    def pair_lines(self):
        return [f"pair_style deepmd {self.model_names()[0]}", f"pair_coeff * * {self.elements()}"]

    def default_command(self) -> str:
        return f"{raw_lmp_command(**dict(plugin_env()))} -i {INPUT_FILE} -log {LOG_FILE} -screen none"
