"""Compare autotest results of several interactions with a reference: a table and overlaid plots."""

from __future__ import annotations

import json
from pathlib import Path

from ..params import ParamError
from .registry import PROPERTIES


def load_result(spec: str) -> tuple[str, dict]:
    """``[label=]path``: a ``result.json`` or a folder holding one; label default: its interaction name.

    Raises
    ------
    ParamError
        if no result file is found.
    """
    label, _, path = spec.rpartition("=")
    path = Path(path)
    if path.is_dir():
        path = path / "result.json"
    if not path.is_file():
        raise ParamError(f"compare: {path} does not exist; run `dpgen autotest post` first")
    data = json.loads(path.read_text())
    return label or data.get("interaction", path.parent.name), data


def scalar_rows(results: list[tuple[str, dict]], ref: str) -> list[tuple]:
    """Rows (structure, property folder, quantity, {label: value}) of every number the reference has."""
    by_label = dict(results)
    rows = []
    for key, props in by_label[ref]["confs"].items():
        for folder, res in props.items():
            cls = PROPERTIES.get(res["type"])
            for quantity in cls.scalars(res):
                values = {}
                for label, data in results:
                    other = data["confs"].get(key, {}).get(folder)
                    if other is not None:
                        values[label] = cls.scalars(other).get(quantity)
                rows.append((key, folder, quantity, values))
    return rows


def compare_table(results: list[tuple[str, dict]], ref: str | None = None) -> str:
    """The table materials papers print: per quantity, the reference's value and each other
    interaction's value with its deviation from the reference, 100 (x - x_ref) / |x_ref| (%).

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
    widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]
    line = lambda r: "  ".join(str(x).ljust(w) if i < 3 else str(x).rjust(w)  # noqa: E731
                               for i, (x, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), "-" * len(line(header)), *(line(r) for r in body)]) + "\n"


def compare_plots(results: list[tuple[str, dict]], out_dir: Path) -> list[Path]:
    """One PNG per structure and plottable property (EOS, γ-line, phonon bands), curves overlaid
    per interaction (matplotlib, Agg backend).  Returns the files written."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
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
