"""Writing evaluation results: the JSON file, a short Markdown report next to it, and bar plots."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path


def write_json(result: dict, path) -> Path:
    """Write `result` as indented JSON through a temporary file + rename (NaN written as null)."""
    from ..utils import atomic_open

    path = Path(path)
    with atomic_open(path) as handle:
        handle.write(json.dumps(_finite(result), indent=2, ensure_ascii=False) + "\n")
    return path


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def subplots(*args, **kwargs):
    """`matplotlib.pyplot.subplots` on the file-only Agg back-end (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save_figure(fig, path) -> Path:
    """Write a figure as PNG (parent folders created) and free it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def bar_plot(values: dict, path, title: str, ylabel: str, chance: float | None = None) -> Path:
    """A PNG bar chart of `{label: value}`, with a dashed horizontal line at `chance` (labelled) when given."""
    return save_figure(bar_figure(values, title, ylabel, chance)[0], path)


def bar_figure(values: dict, title: str, ylabel: str, chance: float | None = None):
    """`(fig, ax)` of `bar_plot`, not yet saved."""
    fig, ax = subplots(figsize=(max(4, 0.8 * len(values) + 2), 3.5))
    labels = list(values)
    ax.bar(range(len(labels)), [values[k] for k in labels], color="tab:blue")
    if chance is not None:
        ax.axhline(chance, color="tab:red", linestyle="--", linewidth=1, label=f"chance = {chance:g}")
        ax.legend(loc="lower right")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return fig, ax


def markdown_table(header, rows) -> list[str]:
    """The lines of a Markdown table, columns padded to their widest cell and each rule as long as its column."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row):
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " |"

    return [line(cells[0]), "| " + " | ".join("-" * width for width in widths) + " |", *map(line, cells[1:])]


def write_report(path, title: str, summary: dict, table: str | None = None, plots=(), notes: str = "") -> Path:
    """A Markdown report: a summary table of scalar results, an optional preformatted table, and the plots."""
    path = Path(path)
    rows = [(str(key), f"{value:.4f}" if isinstance(value, float) else str(value)) for key, value in summary.items()]
    lines = [f"# {title}", "", *markdown_table(("metric", "value"), rows)]
    if table:
        lines += ["", "```", table, "```"]
    for plot in plots:
        lines += ["", f"![{Path(plot).stem}]({os.path.relpath(plot, path.parent)})"]
    if notes:
        lines += ["", notes]
    from ..utils import atomic_open

    with atomic_open(path) as handle:
        handle.write("\n".join(lines) + "\n")
    return path


__all__ = ["bar_figure", "bar_plot", "markdown_table", "save_figure", "subplots", "write_json", "write_report"]
