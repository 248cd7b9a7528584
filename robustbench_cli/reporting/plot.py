"""The accuracy-versus-eps figure."""

import io
from collections import defaultdict

from robustbench_cli.reporting.atomic import atomic_write_bytes
from robustbench_cli.reporting.rows import (
    describe_identity,
    describe_shared,
    is_check,
    series_name,
    threat_norm,
    varying_identity_keys,
)


def _curves_by_norm(rows) -> dict:
    """{norm: {legend label: [(eps, accuracy %, low %, high %), ...] sorted by eps}}, one curve
    per attack (and model, where rows differ in it); low/high bound the 95% interval."""
    keys = varying_identity_keys(rows)
    points = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row["attack"] == "none" or row.get("accuracy") is None or is_check(row):
            continue
        series = series_name(row)
        label = series
        if keys:
            label = f"{describe_identity(keys, [row.get(key) for key in keys])} {series}"
        accuracy = float(row["accuracy"])
        low, high = (accuracy if row.get(key) is None else row[key] for key in ("ci_low", "ci_high"))
        points[threat_norm(series)][label].append(
            (float(row["eps"]), 100 * accuracy, 100 * float(low), 100 * float(high)))
    return {
        norm: {label: sorted(curve) for label, curve in sorted(curves.items())}
        # L-inf first: it is the usual threat model and the one most rows use
        for norm, curves in sorted(points.items(), key=lambda item: (item[0] != "linf", item[0]))
    }


def plot_accuracy_vs_eps(rows, path) -> None:
    """Write a PNG with one accuracy (%) over eps curve per attack, 'none' and sanity checks
    left out, each with a band for its 95% interval.

    Attacks of different norms (L-inf, L2, ...) get side-by-side panels: their eps scales differ.
    """
    # A bare Figure renders with Agg without pyplot: no global backend, no display needed,
    # and matplotlib is only imported when a plot is drawn.
    from matplotlib.figure import Figure

    rows = list(rows)
    curves_by_norm = _curves_by_norm(rows) or {"linf": {}}
    figure = Figure(figsize=(6.4 * len(curves_by_norm), 4.4), layout="constrained")
    for axes, (norm, curves) in zip(
        figure.subplots(1, len(curves_by_norm), squeeze=False)[0], curves_by_norm.items()
    ):
        for label, curve in curves.items():
            eps_values, accuracies, lows, highs = zip(*curve)
            (line,) = axes.plot(eps_values, accuracies, marker="o", label=label)
            axes.fill_between(eps_values, lows, highs, color=line.get_color(), alpha=0.15, linewidth=0)
        axes.set_xlabel(f"eps ({norm.upper().replace('LINF', 'L-inf')})")
        axes.set_ylabel("accuracy (%)")
        axes.set_ylim(-2, 102)
        axes.grid(alpha=0.3)
        if curves:
            axes.legend(fontsize=8)
    shared = describe_shared(rows)
    figure.suptitle("Accuracy vs eps" + (f"\n{shared}" if shared else ""), fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    atomic_write_bytes(path, buffer.getvalue())
