"""Turning values into text: eps, percentages, markdown tables and CSV."""

import csv
import io
import json


def format_eps(eps) -> str:
    """Up to 4 significant digits: 8/255 -> 0.03137, 0.1 -> 0.1, 0 -> 0."""
    return f"{float(eps):.4g}"


def format_percent(fraction, missing="-") -> str:
    """A fraction in [0, 1] as a percentage with 2 decimals."""
    return missing if fraction is None else f"{100 * float(fraction):.2f}"


def format_with_interval(fraction, low, high, missing="-") -> str:
    """A percentage with +- the half-width of its interval (Wilson intervals are nearly
    symmetric away from 0% and 100%; the exact bounds are in the row's ci_low/ci_high)."""
    if fraction is None or low is None or high is None:
        return format_percent(fraction, missing)
    return f"{format_percent(fraction)} ± {100 * (high - low) / 2:.2f}"


def format_plain(value, missing="-") -> str:
    return missing if value is None else str(value)


def format_seconds(seconds, missing="-") -> str:
    return missing if seconds is None else f"{float(seconds):.1f}"


def _markdown_cell(text) -> str:
    # A pipe would end the cell and a newline the row.
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers, body, right_aligned=()) -> str:
    """A GitHub-flavoured markdown table; `right_aligned` holds indexes of numeric columns."""
    rule = ["---:" if index in right_aligned else "---" for index in range(len(headers))]
    lines = [headers, rule, *body]
    return "\n".join("| " + " | ".join(_markdown_cell(cell) for cell in line) + " |" for line in lines) + "\n"


def csv_value(value) -> str:
    """A CSV cell: empty for missing, JSON for nested values, str() otherwise (floats round-trip)."""
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def csv_text(header, body) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(body)
    return buffer.getvalue()
