"""The perturbation-level table and plot of `robust analyze layers` (no torch here).

Files in the run folder: layers.csv, layers.md (one row per layer, one column per input
kind) and layers.png (E_l over the layer index, log scale).
"""

import io
import json
from pathlib import Path

from rich.table import Table

from robustbench_cli.reporting.atomic import atomic_write_bytes, atomic_write_text
from robustbench_cli.reporting.formatting import csv_text, markdown_table
from robustbench_cli.reporting.run_files import RESULTS_JSON


def _cells(layers: list[str], levels: dict[str, list[float]]):
    headers = ["#", "layer", *levels]
    body = [[str(index + 1), name, *(f"{levels[kind][index]:.4g}" for kind in levels)]
            for index, name in enumerate(layers)]
    return headers, body


def layer_table(layers, levels, title: str) -> Table:
    headers, body = _cells(layers, levels)
    table = Table(title=title)
    for index, header in enumerate(headers):
        table.add_column(header, justify="left" if index == 1 else "right")
    for line in body:
        table.add_row(*line)
    return table


def write_layer_report(run_dir, layers, levels, title: str) -> None:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    headers, body = _cells(layers, levels)
    exact = [[index + 1, name, *(levels[kind][index] for kind in levels)]
             for index, name in enumerate(layers)]
    atomic_write_text(run_dir / "layers.csv", csv_text(headers, exact))
    numeric = set(range(len(headers))) - {1}
    atomic_write_text(run_dir / "layers.md", f"# {title}\n\nE_l = |f_l(x') - f_l(x)|_1 / |f_l(x)|_1, "
                      "mean over the test images\n\n" + markdown_table(headers, body, numeric))
    atomic_write_bytes(run_dir / "layers.png", _plot(layers, levels, title))
    # long rows (one per layer and input kind) for a study table: rows kind, cols index
    rows = [{"index": index + 1, "layer": name, "kind": kind, "level": levels[kind][index]}
            for kind in levels for index, name in enumerate(layers)]
    atomic_write_text(run_dir / RESULTS_JSON, json.dumps(rows, indent=2) + "\n")


def _plot(layers, levels, title: str) -> bytes:
    from matplotlib.figure import Figure  # drawn without pyplot: no display, no global backend

    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    axes = figure.add_subplot()
    positions = range(1, len(layers) + 1)
    for kind, values in levels.items():
        axes.plot(positions, [max(v, 1e-12) for v in values], marker="o", label=kind)
    axes.set_yscale("log")
    axes.set_xticks(list(positions), layers, rotation=60, ha="right", fontsize=7)
    axes.set_xlabel("layer (forward order)")
    axes.set_ylabel("perturbation level E_l")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()
