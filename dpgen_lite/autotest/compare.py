"""Compare autotest results of several interactions with a reference: a table and overlaid plots."""

from __future__ import annotations

import json
from pathlib import Path

from ..params import ParamError
from .registry import PROPERTIES


def load_result(spec: str) -> tuple[str, dict]:
    """``[label=]path``: a ``result.json`` or a folder holding one (label default: its interaction
    name), or a JSON of published numbers (label default: its ``label``)::

        {"label": "Mishin EAM (paper)", "source": "Mishin et al., PRB 63, 224106 (2001)",
         "values": {"confs/std-fcc": {"elastic_00": {"C11 (GPa)": 169.9, ...}, ...}}}

    whose quantities are named as the properties' ``scalars`` name them (as in ``compare.md``).

    Raises
    ------
    ParamError
        if no result file is found, or a published JSON lacks ``source`` or ``values``.
    """
    label, _, path = spec.rpartition("=")
    path = Path(path)
    if path.is_dir():
        path = path / "result.json"
    if not path.is_file():
        raise ParamError(f"compare: {path} does not exist; run `dpgen autotest post` first")
    data = json.loads(path.read_text())
    if "confs" not in data:
        missing = [k for k in ("source", "values") if not data.get(k)]
        if missing:
            raise ParamError(f"compare: {path} is neither a result.json (no 'confs') nor a JSON of published "
                             f"numbers (no {missing}); give 'source' (where the numbers are published) and "
                             "'values' {structure: {property folder: {quantity: value}}}")
        return label or data.get("label", path.stem), data
    return label or data.get("interaction", path.parent.name), data


def scalars_of(data: dict, key: str, folder: str) -> dict | None:
    """The named numbers of one property of one structure (``{quantity: value}``, the property's
    ``scalars``; a published JSON's ``values`` as given), None where ``data`` lacks it."""
    if "confs" not in data:
        return data["values"].get(key, {}).get(folder)
    res = data["confs"].get(key, {}).get(folder)
    return None if res is None else PROPERTIES.get(res["type"]).scalars(res)


def scalar_rows(results: list[tuple[str, dict]], ref: str) -> list[tuple]:
    """Rows (structure, property folder, quantity, {label: value}) of every number the reference has."""
    by_label = dict(results)
    data = by_label[ref]
    pairs = [(key, folder) for key, props in data["confs" if "confs" in data else "values"].items() for folder in props]
    rows = []
    for key, folder in pairs:
        for quantity in scalars_of(data, key, folder):
            values = {label: (scalars_of(other, key, folder) or {}).get(quantity) for label, other in results}
            rows.append((key, folder, quantity, values))
    return rows


def compare_grid(results: list[tuple[str, dict]], ref: str | None = None) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the table materials papers print (APEX's Table I, the ML-EAM paper's
    tables): per quantity, the reference's value, then each other interaction's value and its
    deviation from the reference, 100 (x - x_ref) / |x_ref| (%).  "-" where a value is missing.

    Raises
    ------
    ParamError
        if ``ref`` is not one of the labels.
    """
    labels = [label for label, _ in results]
    ref = ref or labels[0]
    if ref not in labels:
        raise ParamError(f"compare: reference {ref!r} is not among {labels}")
    others = [x for x in labels if x != ref]
    header = ["structure", "property", "quantity", f"{ref} (ref)"]
    for label in others:
        header += [label, "dev %"]
    body = []
    for key, folder, quantity, values in scalar_rows(results, ref):
        x0 = values.get(ref)
        row = [key, folder, quantity, "-" if x0 is None else f"{x0:.4f}"]
        for label in others:
            x = values.get(label)
            row.append("-" if x is None else f"{x:.4f}")
            row.append("-" if x is None or x0 is None or x0 == 0 else f"{100 * (x - x0) / abs(x0):+.1f}")
        body.append(row)
    return header, body


def sources(results: list[tuple[str, dict]]) -> list[str]:
    """``label: source`` of every published reference among ``results``."""
    return [f"{label}: {data['source']}" for label, data in results if "confs" not in data]


def compare_table(results: list[tuple[str, dict]], ref: str | None = None) -> str:
    """:func:`compare_grid` as fixed-width text, the published references' sources below."""
    header, body = compare_grid(results, ref)
    widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]
    line = lambda r: "  ".join(str(x).ljust(w) if i < 3 else str(x).rjust(w)  # noqa: E731
                               for i, (x, w) in enumerate(zip(r, widths)))
    notes = "".join(f"source of {s}\n" for s in sources(results))
    return "\n".join([line(header), "-" * len(line(header)), *(line(r) for r in body)]) + "\n" + notes


def compare_markdown(results: list[tuple[str, dict]], ref: str | None = None) -> str:
    """:func:`compare_grid` as a Markdown table, the published references' sources below."""
    header, body = compare_grid(results, ref)
    rows = [header, ["---"] * 3 + ["---:"] * (len(header) - 3), *body]
    text = "".join("| " + " | ".join(r) + " |\n" for r in rows)
    return text + "".join(f"\nSource of {s}\n" for s in sources(results))


def compare_csv(results: list[tuple[str, dict]], ref: str | None = None) -> str:
    """:func:`compare_grid` as CSV (``csv`` module, a header row first)."""
    import csv
    import io
    out = io.StringIO()
    header, body = compare_grid(results, ref)
    csv.writer(out, lineterminator="\n").writerows([header, *body])
    return out.getvalue()


def write_tables(results: list[tuple[str, dict]], ref: str | None, out_dir: Path) -> list[Path]:
    """``compare.out`` (text), ``compare.md`` and ``compare.csv`` in ``out_dir``; returns the files."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for name, make in (("compare.out", compare_table), ("compare.md", compare_markdown), ("compare.csv", compare_csv)):
        (out_dir / name).write_text(make(results, ref))
        files.append(out_dir / name)
    return files


def compare_plots(results: list[tuple[str, dict]], out_dir: Path) -> list[Path]:
    """One PNG per structure and plottable property (EOS, γ-line, phonon bands), curves overlaid
    per interaction (matplotlib, Agg backend).  Returns the files written."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = [(label, data) for label, data in results if "confs" in data]  # published numbers: no curves
    pairs = {(key, folder): res["type"] for _, data in results for key, props in data["confs"].items()
             for folder, res in props.items()}
    written = []
    for (key, folder), ptype in sorted(pairs.items()):
        cls = PROPERTIES.get(ptype)
        fig, ax = plt.subplots(figsize=(6, 4.5))
        drawn = [cls.plot(ax, data["confs"][key][folder], label) for label, data in results
                 if folder in data["confs"].get(key, {})]
        if any(drawn):
            ax.set_title(f"{key} {folder}")
            ax.legend()
            fig.tight_layout()
            path = out_dir / f"{key.replace('/', '_')}_{folder}.png"
            fig.savefig(path, dpi=120)
            written.append(path)
        plt.close(fig)
    return written
