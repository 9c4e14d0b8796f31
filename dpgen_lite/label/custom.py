"""fp style ``custom``: any labelling program that reads and writes files dpdata knows (DP-GEN's ``custom``).

``param.json``::

    "fp_style": "custom",
    "fp_params": {"input_fmt": "vasp/poscar", "input_fn": "POSCAR",
                  "output_fmt": "extxyz", "output_fn": "label.xyz"}

``machine.json``::

    "fp": {"command": "my_labeller POSCAR label.xyz", "machine": {...}, "resources": {...}}

Each task folder gets its frame written as ``input_fn`` in the dpdata format ``input_fmt``
(``frame.to(input_fmt, input_fn)``: any format dpdata can write a ``System`` in, e.g.
``vasp/poscar``, ``lammps/lmp``, ``xyz``, ``deepmd/npy``); ``machine.json``'s ``fp.command``
runs in the folder and must write ``output_fn``, which is read back as
``dpdata.LabeledSystem(output_fn, fmt=output_fmt, type_map=type_map)``: exactly one frame,
energies in eV, forces in eV/Å (and virials in eV, when the format has them), as dpdata
converts them.  There is no default command: without ``fp.command`` the fp step stops with
a message saying so.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import dpdata
from dargs import Argument
from dpdata.format import Format

from ..params import ParamError, arg
from .base import FpStyle, FpTaskFailed, check_finite, register

KEYS = ("input_fmt", "input_fn", "output_fmt", "output_fn")


def _format(name: str, method: str) -> type[Format] | None:
    """dpdata's format class registered as ``name`` (case-insensitive) if it implements ``method``."""
    cls = Format.get_formats().get(name.lower())
    if cls is None or getattr(cls, method) is getattr(Format, method):
        return None
    return cls


def _formats_with(method: str) -> list[str]:
    """Names of dpdata's formats that implement ``method``."""
    return sorted(n for n, cls in Format.get_formats().items() if getattr(cls, method) is not getattr(Format, method))


@register
class CustomStyle(FpStyle):
    """Label with a program of the user's: dpdata writes its input and reads its output."""

    name = "custom"

    @classmethod
    def args(cls) -> list[Argument]:
        """``fp_params``: ``input_fmt``, ``input_fn``, ``output_fmt``, ``output_fn`` (all required)."""
        return [
            arg("fp_params", dict, "the files the labelling program reads and writes", sub_fields=[
                arg("input_fmt", str, "dpdata format the frame is written in, e.g. vasp/poscar"),
                arg("input_fn", str, "file name of the input in the task folder, e.g. POSCAR"),
                arg("output_fmt", str, "dpdata format of the labelled output, e.g. extxyz"),
                arg("output_fn", str, "file name of the output the command writes in the task folder"),
            ]),
        ]

    @property
    def output_files(self) -> list[str]:  # type: ignore[override]
        """The output file is brought back from each task."""
        return [self.param["fp_params"]["output_fn"]]

    def check(self) -> None:
        fp = self.param.get("fp_params")
        if not isinstance(fp, dict):
            raise ValueError(
                f"fp_params = {fp!r}: fp_style 'custom' needs a dict with {', '.join(KEYS)}, e.g. "
                '{"input_fmt": "vasp/poscar", "input_fn": "POSCAR", "output_fmt": "extxyz", "output_fn": "label.xyz"}')
        missing = [k for k in KEYS if not fp.get(k)]
        if missing:
            raise ValueError(f"fp_params: missing {missing}; fp_style 'custom' needs {', '.join(KEYS)}")
        for key in ("input_fn", "output_fn"):
            name = PurePosixPath(fp[key])
            if name.is_absolute() or ".." in name.parts or str(name) in ("", "."):
                raise ValueError(f"fp_params.{key} = {fp[key]!r}: give a file name inside the task folder "
                                 "(relative, without '..')")
        if PurePosixPath(fp["input_fn"]) == PurePosixPath(fp["output_fn"]):
            raise ValueError(f"fp_params.input_fn = fp_params.output_fn = {fp['input_fn']!r}: "
                             "the output must be another file than the input")
        if _format(fp["input_fmt"], "to_system") is None:
            raise ValueError(f"fp_params.input_fmt = {fp['input_fmt']!r}: dpdata cannot write a frame in this "
                             f"format; allowed: {', '.join(_formats_with('to_system'))}")
        if _format(fp["output_fmt"], "from_labeled_system") is None:
            raise ValueError(f"fp_params.output_fmt = {fp['output_fmt']!r}: dpdata cannot read labels from this "
                             f"format; allowed: {', '.join(_formats_with('from_labeled_system'))}")

    def write_inputs(self, frame: dpdata.System, task_dir: Path) -> list[str]:
        fp = self.param["fp_params"]
        frame.to(fp["input_fmt"], str(Path(task_dir) / fp["input_fn"]))
        return [fp["input_fn"]]

    def default_command(self) -> str:
        """None: the program is the user's.

        Raises
        ------
        ParamError
            always, saying to set ``machine.json``'s ``fp.command``.
        """
        fp = self.param.get("fp_params") or {}
        raise ParamError(
            "fp_style 'custom' has no default command: set fp.command in machine.json to the program that "
            f"labels one frame (it runs in each task folder, reads {fp.get('input_fn', 'input_fn')!r} and "
            f"writes {fp.get('output_fn', 'output_fn')!r}), and run `dpgen run param.json machine.json`")

    def read_label(self, task_dir: Path) -> dpdata.LabeledSystem:
        fp = self.param["fp_params"]
        out = Path(task_dir) / fp["output_fn"]
        if not out.exists():
            raise FpTaskFailed(f"{task_dir}: no {fp['output_fn']} (the fp command failed or wrote elsewhere; "
                               "see fp.log and fp.err in the task folder)")
        try:
            system = dpdata.LabeledSystem(str(out), fmt=fp["output_fmt"], type_map=self.type_map)
        except Exception as err:  # dpdata raises anything from a malformed file
            raise FpTaskFailed(f"{task_dir}: {fp['output_fn']} cannot be read as dpdata format "
                               f"{fp['output_fmt']!r} ({type(err).__name__}: {err})") from None
        return check_finite(system, task_dir)
