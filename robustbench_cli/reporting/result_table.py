"""The cells of the per-run results table, shared by the markdown file and the console."""

from robustbench_cli.reporting.formatting import (
    format_eps,
    format_plain,
    format_seconds,
    format_with_interval,
)
from robustbench_cli.reporting.rows import (
    constant_identity,
    is_check,
    series_name,
    short_identity,
    varying_identity_keys,
)

MEASURE_HEADERS = ("attack", "eps", "accuracy (%)", "top-5 (%)", "n", "correct", "seconds")
NUMERIC_MEASURES = 6  # every measure column but the attack name


def result_cells(rows):
    """(headers, body, indexes of numeric columns): one body line per row, rows in given order.

    Identity columns (model, dataset, ...) appear only where rows differ in them. Accuracies
    carry +- the half-width of their 95% Wilson interval.
    """
    identity_keys = varying_identity_keys(rows)
    headers = [*identity_keys, *MEASURE_HEADERS]
    body = [
        [
            *(short_identity(key, row.get(key)) for key in identity_keys),
            series_name(row) + (f" ({row['check']})" if is_check(row) else ""),
            format_eps(row["eps"]),
            format_with_interval(row.get("accuracy"), row.get("ci_low"), row.get("ci_high")),
            format_with_interval(row.get("top5"), row.get("top5_ci_low"), row.get("top5_ci_high")),
            format_plain(row.get("n")),
            format_plain(row.get("correct")),
            format_seconds(row.get("seconds")),
        ]
        for row in rows
    ]
    numeric = set(range(len(headers) - NUMERIC_MEASURES, len(headers)))
    return headers, body, numeric


def identity_line(rows, separator=", ") -> str:
    """What every row shares, e.g. "model: mlp, dataset: mnist, defense: none"."""
    return separator.join(f"{key}: {value}" for key, value in constant_identity(rows).items())
