"""A study table as a figure: one line per table row over its (numeric) columns, ours solid,
the document's dashed in the same colour."""

import io

from robustbench_cli.reporting.atomic import atomic_write_bytes
from robustbench_cli.studies.spec import Table
from robustbench_cli.studies.tables import Pivot, paper_value


def _number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def plot_table(table: Table, result: Pivot, path) -> bool:
    """Write the figure; False (nothing written) when the columns are not numbers."""
    xs = [_number(c) for c in result.col_keys]
    if not xs or None in xs:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scale = 100 if table.percent else 1
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    for index, row in enumerate(result.row_keys):
        colour = f"C{index % 10}"
        ours = [(x, result.cells[(row, c)] * scale) for x, c in zip(xs, result.col_keys)
                if isinstance(result.cells.get((row, c)), (int, float))]
        theirs = [(x, float(v)) for x, c in zip(xs, result.col_keys)
                  if isinstance(v := paper_value(table, row, c), (int, float))]
        if ours:
            axes.plot(*zip(*ours), "o-", color=colour, label=f"{row} (ours)")
        if theirs:
            axes.plot(*zip(*theirs), "s--", color=colour, alpha=0.6, label=f"{row} (document)")
    axes.set_xlabel(", ".join(table.cols))
    axes.set_ylabel(f"{table.value}{' (%)' if table.percent else ''}")
    axes.set_title(table.title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
    return True
