"""The heatmap of `robust transfer`: one panel per attack and eps, transfer rate in percent,
sources down, targets across, each cell annotated with its value; panels in a grid of one
row per attack and one column per eps."""

import io
import math

from robustbench_cli.reporting.atomic import atomic_write_bytes


def plot_transfer(panels, path, title: str = "", columns: int = 3) -> None:
    """`panels`: (title, source labels, target labels, matrix of rates in [0, 1] or None),
    `columns` to a row; an undefined cell (the source was never fooled) is blank, marked '-'."""
    # A bare Figure renders with Agg without pyplot: no global backend, no display needed.
    from matplotlib.figure import Figure

    panels = list(panels)
    longest = max((len(label) for _, sources, targets, _ in panels for label in [*sources, *targets]),
                  default=1)
    width = max(3.0, 0.8 * max((len(t) for _, _, t, _ in panels), default=1) + 0.07 * longest + 1.6)
    height = max(2.6, 0.6 * max((len(s) for _, s, _, _ in panels), default=1) + 0.07 * longest + 1.2)
    columns = min(columns, max(1, len(panels)))
    figure_rows = max(1, math.ceil(len(panels) / columns))
    figure = Figure(figsize=(width * columns + 1.0, height * figure_rows + 0.6), layout="constrained")
    grid = figure.subplots(figure_rows, columns, squeeze=False)
    image = None
    for index, axes in enumerate(grid.flat):
        if index >= len(panels):
            axes.set_visible(False)
            continue
        name, sources, targets, matrix = panels[index]
        values = [[math.nan if v is None else 100 * float(v) for v in line] for line in matrix]
        image = axes.imshow(values, vmin=0, vmax=100, cmap="viridis", aspect="auto")
        for i, line in enumerate(values):
            for j, value in enumerate(line):
                blank = math.isnan(value)  # on the white background; dark text on light cells
                axes.text(j, i, "-" if blank else f"{value:.1f}", ha="center", va="center",
                          fontsize=8, color="black" if blank or value > 60 else "white")
        axes.set_xticks(range(len(targets)), targets, rotation=30, ha="right", fontsize=8)
        axes.set_yticks(range(len(sources)), sources, fontsize=8)
        axes.set_xlabel("target")
        axes.set_ylabel("source")
        axes.set_title(name, fontsize=9)
    if image is not None:
        figure.colorbar(image, ax=grid.ravel().tolist(), label="transfer rate (%)", shrink=0.8)
    figure.suptitle("Transfer rate" + (f"\n{title}" if title else ""), fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    atomic_write_bytes(path, buffer.getvalue())
