"""The files one run or one multirun job leaves in its folder."""

import json
from pathlib import Path

from robustbench_cli.reporting.atomic import atomic_write_text
from robustbench_cli.reporting.formatting import csv_text, csv_value, markdown_table
from robustbench_cli.reporting.plot import plot_accuracy_vs_eps
from robustbench_cli.reporting.result_table import identity_line, result_cells
from robustbench_cli.reporting.rows import column_order, has_eps_curve

RESULTS_JSON = "results.json"
ERROR_JSON = "error.json"
PLOT_PNG = "accuracy_vs_eps.png"


def results_markdown(rows, notes=()) -> str:
    headers, body, numeric = result_cells(rows)
    shared = identity_line(rows)
    text = "# Results\n\n" + (f"{shared}\n\n" if shared else "")
    text += markdown_table(headers, body, numeric)
    if notes:
        text += "\n## Notes\n\n" + "".join(f"- {note}\n" for note in notes)
    return text


def results_csv(rows) -> str:
    columns = column_order(rows)
    return csv_text(columns, [[csv_value(row.get(key)) for key in columns] for row in rows])


def write_results(run_dir, rows, notes=()) -> None:
    """Write results.json (a plain list of the rows), results.csv, results.md and, when some
    attack has two or more eps, accuracy_vs_eps.png into `run_dir`; each file atomically."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rows, notes = list(rows), list(notes)
    # default=str: a Path or similar identity value is stored as its text.
    atomic_write_text(run_dir / RESULTS_JSON, json.dumps(rows, indent=2, default=str) + "\n")
    atomic_write_text(run_dir / "results.csv", results_csv(rows))
    atomic_write_text(run_dir / "results.md", results_markdown(rows, notes))
    if has_eps_curve(rows):
        plot_accuracy_vs_eps(rows, run_dir / PLOT_PNG)


def write_job_failure(job_dir, overrides: list[str], error: str) -> None:
    """Record a failed multirun job as error.json, so `robust aggregate` can list it."""
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    record = {"overrides": [str(item) for item in overrides], "error": str(error)}
    atomic_write_text(job_dir / ERROR_JSON, json.dumps(record, indent=2) + "\n")
