"""The accuracy-versus-eps figure."""

import io
from collections import defaultdict

from robustbench_cli.reporting.atomic import atomic_write_bytes
from robustbench_cli.reporting.rows import (
    describe_identity,
    describe_shared,
    series_name,
    varying_identity_keys,
)


def _curves(rows) -> dict:
    """{legend label: [(eps, accuracy %), ...] sorted by eps}, one per attack (and model)."""
    keys = varying_identity_keys(rows)
    points = defaultdict(list)
    for row in rows:
        if row["attack"] == "none" or row.get("accuracy") is None:
            continue
        label = series_name(row)
        if keys:
            label = f"{describe_identity(keys, [row.get(key) for key in keys])} {label}"
        points[label].append((float(row["eps"]), 100 * float(row["accuracy"])))
    return {label: sorted(curve) for label, curve in sorted(points.items())}


def plot_accuracy_vs_eps(rows, path) -> None:
    """Write a PNG with one accuracy (%) over eps curve per attack, 'none' left out."""
    # A bare Figure renders with Agg without pyplot: no global backend, no display needed,
    # and matplotlib is only imported when a plot is drawn.
    from matplotlib.figure import Figure

    rows = list(rows)
    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    axes = figure.add_subplot()
    for label, curve in _curves(rows).items():
        eps_values, accuracies = zip(*curve)
        axes.plot(eps_values, accuracies, marker="o", label=label)
    shared = describe_shared(rows)
    axes.set_title("Accuracy vs eps" + (f"\n{shared}" if shared else ""), fontsize=10)
    axes.set_xlabel("eps")
    axes.set_ylabel("accuracy (%)")
    axes.set_ylim(-2, 102)
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    atomic_write_bytes(path, buffer.getvalue())
