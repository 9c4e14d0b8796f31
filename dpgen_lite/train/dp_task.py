"""Task-side program of a training task: several ``dp`` command lines in one Python process.

    python -m dpgen_lite.train.dp_task --tf train input.json --then --tf freeze -o frozen_model.pb

Each part between ``--then`` is one ``dp`` command line, run in order by deepmd-kit's own entry
point (``deepmd.main.main``, what the ``dp`` console script calls); the first that fails stops
the rest with its error (exit status 1).  Between two commands TensorFlow's default graph is
reset, so that ``freeze`` and ``compress`` read the checkpoint into an empty graph as a fresh
``dp`` does: the frozen model is the one ``dp freeze`` writes.  One process instead of one per
command saves deepmd-kit's start-up (importing TensorFlow and building its ops, about 10 s of
the freeze on 2 cores; ``benchmarks/train_task.py``).  It runs only where the task's ``dp`` is
a console script of the Python environment dpgen_lite runs in
(:func:`dpgen_lite.dispatch.local_python`); elsewhere the task calls ``dp`` once per command.
"""

from __future__ import annotations

import sys

THEN = "--then"


def split(argv: list[str]) -> list[list[str]]:
    """The ``dp`` command lines of ``argv``, separated by :data:`THEN`.

    Raises
    ------
    ValueError
        if a command line is empty.
    """
    parts: list[list[str]] = [[]]
    for arg in argv:
        if arg == THEN:
            parts.append([])
        else:
            parts[-1].append(arg)
    if not all(parts):
        raise ValueError(f"an empty dp command in {argv} (parts are separated by {THEN})")
    return parts


def main(argv: list[str] | None = None) -> None:
    """Run each ``dp`` command line of ``argv`` (default ``sys.argv[1:]``) in this process."""
    from deepmd.main import main as dp

    for k, args in enumerate(split(sys.argv[1:] if argv is None else argv)):
        if k and "--pt" not in args:  # TensorFlow (the default backend): start from an empty graph
            import tensorflow as tf

            tf.compat.v1.reset_default_graph()
        dp(args)


if __name__ == "__main__":
    main()
