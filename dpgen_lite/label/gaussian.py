"""fp style ``gaussian``: label frames with Gaussian (g16 / g09), as DP-GEN does.

``param.json``::

    "fp_style": "gaussian",
    "fp_params": {"keywords": "force b3lyp/6-31g** nosymm", "multiplicity": 1, "nproc": 4}

``fp_params`` keys (DP-GEN's): ``keywords`` (a route line, or a list of them: one Gaussian job
each, chained with ``--link1--``; the last one must print forces, e.g. ``force``),
``multiplicity`` (an int, or ``"auto"``: found from the molecules of the frame, which needs
Open Babel), ``nproc`` (``%nproc``), ``charge`` [0], ``fragment_guesses`` [false]
(``guess=fragment=N``, multiplicity ``auto``), ``basis_set`` [none] (a custom basis-set
block), ``keywords_high_multiplicity`` [none] (route used for frames with two radicals or more;
multiplicity ``auto``).  The top-level DP-GEN keys ``use_clusters``, ``cluster_cutoff``,
``cluster_cutoff_hard`` and ``cluster_minify`` are accepted, but ``use_clusters: true`` is
refused: each candidate frame is labelled whole.

Each task folder gets ``input`` (dpdata's ``gaussian/gjf`` writer; the frame as one molecule,
without periodic ``TV`` lines, as DP-GEN writes it); the default command is
``g16 < input``, its standard output captured into ``output`` as DP-GEN does (so DP-GEN's
``fp.command`` such as ``g16 < input || :`` works as it is).  The label is read from ``output`` by dpdata's ``gaussian/log``
reader (energy Hartree -> eV, forces Hartree/Bohr -> eV/Å, no virial, ``nopbc``).  A run is
kept only if every job of ``input`` ended with ``Normal termination``; ``Error termination``,
a truncated log (killed, out of time) or a log without forces make the task failed.
"""

from __future__ import annotations

from pathlib import Path

import dpdata
from dargs import Argument

from ..params import arg
from .base import FpStyle, FpTaskFailed, check_finite, register

INPUT = "input"
OUTPUT = "output"
#: words of a Gaussian route that make it print the forces dpdata reads
FORCE_WORDS = ("force", "opt", "freq")


def _routes(value) -> list[str]:
    """``keywords`` as a list of route lines."""
    return [value] if isinstance(value, str) else list(value)


def _has_openbabel() -> bool:
    try:
        from openbabel import openbabel  # noqa: F401
    except ImportError:
        try:
            import openbabel  # noqa: F401
        except ImportError:
            return False
    return True


@register
class GaussianStyle(FpStyle):
    """Label with Gaussian: input written and output read by dpdata."""

    name = "gaussian"
    output_files = [OUTPUT]
    stdout_file = OUTPUT

    @classmethod
    def args(cls) -> list[Argument]:
        """DP-GEN's ``fp_params`` of Gaussian and its cluster keys (``use_clusters: true`` refused)."""
        return [
            arg("use_clusters", bool, "label clusters cut around atoms instead of whole frames: refused "
                "(true), whole frames are labelled", default=False),
            arg("cluster_cutoff", float, "soft cluster radius, Å (only with use_clusters)", default=None),
            arg("cluster_cutoff_hard", float, "hard cluster radius, Å (only with use_clusters)", default=None),
            arg("cluster_minify", bool, "replace cut bonds by hydrogens (only with use_clusters)", default=False),
            arg("fp_params", dict, "the Gaussian input", sub_fields=[
                arg("keywords", [str, list], "route line(s), e.g. 'force b3lyp/6-31g**'; a list: one job each"),
                arg("multiplicity", [int, str], "spin multiplicity, or 'auto' (needs Open Babel)", default="auto"),
                arg("nproc", int, "processors (%nproc)"),
                arg("charge", int, "total charge", default=0),
                arg("fragment_guesses", bool, "initial guess from fragments (multiplicity 'auto')", default=False),
                arg("basis_set", str, "custom basis-set block appended to the input", default=None),
                arg("keywords_high_multiplicity", [str, list], "route line(s) for frames with two radicals or "
                    "more (multiplicity 'auto')", default=None),
            ]),
        ]

    def check(self) -> None:
        if self.param.get("use_clusters"):
            raise ValueError(
                f"use_clusters = {self.param['use_clusters']!r}: refused: dpgen_lite does not cut clusters out of "
                "the candidate frames (nor apply cluster_cutoff, cluster_cutoff_hard, cluster_minify); "
                "remove use_clusters (or set it false) to label each frame whole")
        fp = self.param.get("fp_params")
        if not isinstance(fp, dict):
            raise ValueError(f"fp_params = {fp!r}: fp_style 'gaussian' needs a dict with at least keywords and "
                             "nproc, e.g. {\"keywords\": \"force b3lyp/6-31g**\", \"multiplicity\": 1, \"nproc\": 4}")
        missing = [k for k in ("keywords", "nproc") if k not in fp]
        if missing:
            raise ValueError(f"fp_params: missing {missing}; fp_style 'gaussian' needs keywords and nproc")
        for key in ("keywords", "keywords_high_multiplicity"):
            value = fp.get(key)
            if value is None and key != "keywords":
                continue
            routes = _routes(value) if isinstance(value, (str, list)) else []
            if not routes or not all(isinstance(r, str) and r.strip() for r in routes):
                raise ValueError(f"fp_params.{key} = {value!r}: give a Gaussian route line, or a non-empty list "
                                 "of them, e.g. 'force b3lyp/6-31g**'")
            if not any(w in routes[-1].lower() for w in FORCE_WORDS):
                raise ValueError(f"fp_params.{key} = {value!r}: the last job ({routes[-1]!r}) prints no forces; "
                                 f"add 'force' to it, e.g. 'force {routes[-1].strip()}'")
        nproc = fp["nproc"]
        if not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1:
            raise ValueError(f"fp_params.nproc = {nproc!r}: give the number of processors, an integer >= 1")
        mult = fp.get("multiplicity", "auto")
        if mult != "auto" and (not isinstance(mult, int) or isinstance(mult, bool) or mult < 1):
            raise ValueError(f"fp_params.multiplicity = {mult!r}: give an integer >= 1 or 'auto'")
        charge = fp.get("charge", 0)
        if not isinstance(charge, int) or isinstance(charge, bool):
            raise ValueError(f"fp_params.charge = {charge!r}: give the total charge, an integer")
        auto = mult == "auto" or fp.get("fragment_guesses")
        if fp.get("keywords_high_multiplicity") is not None and mult != "auto":
            raise ValueError(f"fp_params.keywords_high_multiplicity is given with multiplicity = {mult!r}: it is "
                             "used only with multiplicity 'auto'; set multiplicity to 'auto' or remove it")
        if fp.get("keywords_high_multiplicity") is not None and fp.get("fragment_guesses"):
            raise ValueError("fp_params.keywords_high_multiplicity with fragment_guesses = true: dpdata's Gaussian "
                             "writer cannot combine them; remove one of the two")
        if auto and not _has_openbabel():
            what = "fragment_guesses = true" if fp.get("fragment_guesses") else "multiplicity = 'auto'"
            raise ValueError(
                f"fp_params.{what}: the molecules of each frame are found with Open Babel, which is not "
                "installed; install it (pip install openbabel-wheel), or give the multiplicity as an integer "
                "(e.g. \"multiplicity\": 1 for a closed-shell system) without fragment_guesses")

    def write_inputs(self, frame: dpdata.System, task_dir: Path) -> list[str]:
        fp = self.param["fp_params"]
        molecule = frame.copy()
        molecule.data["nopbc"] = True  # DP-GEN writes the frame as a molecule: no TV lines
        molecule.to("gaussian/gjf", str(Path(task_dir) / INPUT), keywords=fp["keywords"],
                    multiplicity=fp.get("multiplicity", "auto"), charge=fp.get("charge", 0),
                    fragment_guesses=fp.get("fragment_guesses", False), basis_set=fp.get("basis_set"),
                    keywords_high_multiplicity=fp.get("keywords_high_multiplicity"), nproc=fp["nproc"])
        return [INPUT]

    def default_command(self) -> str:
        return f"g16 < {INPUT}"

    def read_label(self, task_dir: Path) -> dpdata.LabeledSystem:
        task_dir = Path(task_dir)
        out = task_dir / OUTPUT
        if not out.is_file():
            raise FpTaskFailed(f"{task_dir}: no {OUTPUT} (Gaussian did not run, or the fp command did not write its "
                               f"log to {OUTPUT}; see fp.log and fp.err)")
        text = out.read_text(errors="replace")
        errors = [line.strip() for line in text.splitlines() if "Error termination" in line]
        if errors:
            raise FpTaskFailed(f"{task_dir}: Gaussian stopped with an error ({errors[-1]})")
        inp = task_dir / INPUT
        n_jobs = 1 + inp.read_text().count("--link1--") if inp.is_file() else 1
        normal = text.count("Normal termination")
        if normal < n_jobs:
            raise FpTaskFailed(f"{task_dir}: Gaussian did not finish: {normal} of the {n_jobs} job(s) of {INPUT} "
                               "ended with 'Normal termination' (killed, out of time or memory?)")
        try:
            system = dpdata.LabeledSystem(str(out), fmt="gaussian/log", type_map=self.type_map)
        except Exception as err:  # dpdata raises anything from a malformed log
            raise FpTaskFailed(f"{task_dir}: {OUTPUT} cannot be read as a Gaussian log "
                               f"({type(err).__name__}: {err})") from None
        if system.get_nframes() == 0:
            raise FpTaskFailed(f"{task_dir}: {OUTPUT} holds no forces (the last job's keywords need 'force')")
        return check_finite(system, task_dir)
