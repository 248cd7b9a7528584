"""Result files and the terminal table of `robust detect`: one row per attack x eps, plus
the clean row, with detection rates, false-positive rate, ROC AUC and accuracy with reject."""

import json
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from robustbench_cli.reporting.atomic import atomic_write_text
from robustbench_cli.reporting.formatting import format_eps, format_percent, format_plain, markdown_table
from robustbench_cli.reporting.result_table import identity_line
from robustbench_cli.reporting.rows import describe_shared, series_name, short_identity, varying_identity_keys
from robustbench_cli.reporting.run_files import RESULTS_JSON, results_csv


def format_auc(value, missing="-") -> str:
    return missing if value is None else f"{float(value):.3f}"


def format_mean(value, missing="-") -> str:
    return missing if value is None else f"{float(value):.1f}"


# (header, row key, formatter) after attack and eps. detected: share of the fooling adversarial
# inputs rejected; of attacked: of all attacked points' inputs; FPR: share of clean inputs
# rejected; acc+reject: accuracy of classifier + detector (a rejected adversarial input counts
# as defended, a rejected clean one as an error); acc: the classifier alone on those inputs.
# Under protocol=all_points clean-wrong points are attacked too: they count as fooled when
# their adversarial image is wrong, and their own detection rate has its own column.
MEASURES = (
    ("n", "n", format_plain),
    ("attacked", "n_attacked", format_plain),
    ("fooled", "n_successful", format_plain),
    ("detected %", "detection_rate", format_percent),
    ("of attacked %", "detection_rate_attacked", format_percent),
    ("FPR %", "false_positive_rate", format_percent),
    ("AUC", "roc_auc", format_auc),
    ("mutants", "mean_mutants", format_mean),
    ("clean-wrong", "n_clean_wrong", format_plain),
    ("of clean-wrong %", "detection_rate_clean_wrong", format_percent),
    ("acc+reject %", "accuracy", format_percent),
    ("acc %", "accuracy_without_detector", format_percent),
)


CLEAN_WRONG_KEYS = ("n_clean_wrong", "detection_rate_clean_wrong")  # all_points only
WIDE_TABLE = 140  # characters: every column at full width


def is_detection_row(row) -> bool:
    return "detector" in row


def detection_cells(rows):
    """(headers, body, indexes of numeric columns), one body line per row in given order;
    identity columns (detector, model, ...) only where rows differ in them, the mutants
    column only for detectors that draw mutants."""
    keys = (["detector"] if len({row.get("detector") for row in rows}) > 1 else [])
    keys += varying_identity_keys(rows)
    all_points = any(row.get("protocol") == "all_points" for row in rows)
    measures = [m for m in MEASURES
                if (m[1] != "mean_mutants" or any(m[1] in row for row in rows))
                and (all_points or m[1] not in CLEAN_WRONG_KEYS)]
    headers = [*keys, "attack", "eps", *(header for header, _, _ in measures)]
    body = [
        [
            *(short_identity(key, row.get(key)) for key in keys),
            series_name(row),
            format_eps(row["eps"]),
            *(format_value(row.get(key)) for _, key, format_value in measures),
        ]
        for row in rows
    ]
    numeric = set(range(len(keys) + 1, len(headers)))  # all but the identity and attack names
    return headers, body, numeric


def calibration_line(rows) -> str:
    """What every row shares about the detector: its name, data sizes and threshold."""
    first = rows[0]
    detectors = sorted({str(row["detector"]) for row in rows})
    text = (f"detector {', '.join(detectors)}; {first.get('n_calibration')} clean points for "
            f"calibration, {first.get('n')} for evaluation")
    if len(detectors) == 1 and first.get("threshold") is not None:
        text += f"; rejects score > {first['threshold']:.4g} ({first.get('threshold_from', '')})"
    return text


def _title(rows) -> str:
    shared = describe_shared(rows)
    return f"Detection ({shared})" if shared else "Detection"


def detection_markdown(rows) -> str:
    headers, body, numeric = detection_cells(rows)
    shared = identity_line(rows)
    text = "# Detection results\n\n" + (f"{shared}\n\n" if shared else "")
    text += f"{calibration_line(rows)}.\n\n"
    text += markdown_table(headers, body, numeric)
    return text


def write_detection_results(run_dir, rows) -> None:
    """results.json (the rows), results.csv and results.md in `run_dir`, each atomically."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    atomic_write_text(run_dir / RESULTS_JSON, json.dumps(rows, indent=2, default=str) + "\n")
    atomic_write_text(run_dir / "results.csv", results_csv(rows))
    atomic_write_text(run_dir / "results.md", detection_markdown(rows))


def print_detection_results(rows, console=None) -> None:
    rows = list(rows)
    headers, body, numeric = detection_cells(rows)
    table = Table(title=_title(rows), caption=calibration_line(rows), caption_justify="left",
                  box=box.SIMPLE_HEAD)
    for index, header in enumerate(headers):
        table.add_column(header, justify="right" if index in numeric else "left")
    for line in body:
        table.add_row(*line)
    if console is None:
        console = Console()
        if not console.is_terminal:  # a pipe or a log has no screen width to fit: cut nothing
            console.width = max(console.width, WIDE_TABLE)
    console.print(table)
