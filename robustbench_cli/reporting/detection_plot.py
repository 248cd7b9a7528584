"""The figures of `robust detect`: score distributions (clean vs attacked) and ROC curves."""

import io
import math

from robustbench_cli.reporting.atomic import atomic_write_bytes

SCORE_CDF_PNG = "score_cdf.png"
ROC_PNG = "roc.png"


def _new_axes():
    # A bare Figure renders with Agg without pyplot: no global backend, no display needed.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    return figure, figure.add_subplot()


def _save(figure, axes, path) -> None:
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    atomic_write_bytes(path, buffer.getvalue())


def _cumulative(scores) -> tuple[list[float], list[float]]:
    """Steps of the empirical CDF: the share of scores <= x. Infinite scores (no class claimed)
    never fall below a finite x, so such a curve ends below 1."""
    finite = sorted(s for s in scores if math.isfinite(s))
    shares = [(rank + 1) / len(scores) for rank in range(len(finite))]
    return finite[:1] + finite, [0.0] + shares


def plot_score_cdf(clean, adversarial: dict, threshold, score_label: str, title: str, path) -> None:
    """One CDF curve for the clean scores and one per "attack eps=E" series; for a score that
    is 1 / confidence, the share below x is the share of inputs with confidence above 1 / x."""
    figure, axes = _new_axes()
    for index, (label, scores) in enumerate({"clean": clean, **adversarial}.items()):
        if scores:
            xs, ys = _cumulative(scores)
            axes.step(xs, ys, where="post", label=f"{label} ({len(scores)})", color=f"C{index}",
                      linewidth=2 if label == "clean" else 1.2)
    if threshold is not None and math.isfinite(threshold):
        axes.axvline(threshold, color="black", linestyle="--", linewidth=1, label="threshold")
    axes.set_title(f"Score distribution (rejected: score > threshold)\n{title}", fontsize=10)
    axes.set_xlabel(f"score: {score_label}")
    axes.set_ylabel("share of inputs with score <= x")
    axes.set_ylim(-0.02, 1.02)
    _save(figure, axes, path)


def plot_roc(curves: dict, title: str, path) -> None:
    """ROC curves, {label: (false-positive rates, true-positive rates, auc)}, and chance."""
    figure, axes = _new_axes()
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="chance")
    for index, (label, (fpr, tpr, auc)) in enumerate(curves.items(), start=1):
        # start=1: each series keeps the colour it has in the score plot, where clean is C0
        axes.plot(fpr, tpr, label=f"{label} (AUC {auc:.3f})", color=f"C{index}")
    axes.set_title(f"ROC: successful adversarial vs clean inputs\n{title}", fontsize=10)
    axes.set_xlabel("false-positive rate (clean inputs rejected)")
    axes.set_ylabel("true-positive rate (successful adversarial inputs rejected)")
    axes.set_xlim(-0.01, 1.01)
    axes.set_ylim(-0.01, 1.01)
    _save(figure, axes, path)
