"""The results table on the terminal, with rich."""

from rich.console import Console
from rich.table import Table

from robustbench_cli.reporting.result_table import result_cells
from robustbench_cli.reporting.rows import describe_shared


def _default_title(rows) -> str:
    shared = describe_shared(rows)
    return f"Accuracy under attack ({shared})" if shared else "Accuracy under attack"


def results_table(rows, title=None, notes=()) -> Table:
    """One table row per result row, accuracy in percent; notes go in the caption."""
    rows = list(rows)
    headers, body, numeric = result_cells(rows)
    table = Table(
        title=title if title is not None else _default_title(rows),
        caption="\n".join(f"! {note}" for note in notes) or None,
        caption_style="yellow",
        caption_justify="left",
    )
    for index, header in enumerate(headers):
        # fold, not ellipsis: a narrow terminal must wrap numbers, never cut them
        table.add_column(header, justify="right" if index in numeric else "left", overflow="fold")
    for line in body:
        table.add_row(*line)
    return table


def print_results(rows, notes=(), console=None) -> None:
    """Print the results table, with the notes under it."""
    (console or Console()).print(results_table(rows, notes=notes))
