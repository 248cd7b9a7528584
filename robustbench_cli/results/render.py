"""The selected rows as text: a rich table on the terminal, markdown, CSV or JSON.

Text tables show a measure in percent with +- its interval half-width; CSV and JSON carry
the raw numbers (value, ci_low, ci_high) for scripts.
"""

import datetime
import json

from robustbench_cli.reporting.formatting import csv_text, csv_value, format_with_interval, markdown_table
from robustbench_cli.results.fields import FIELDS, JSON_FIELDS, show_field, sort_key
from robustbench_cli.results.query import is_fraction, measure

FORMATS = ("md", "csv", "json")
ALWAYS_SHOWN = ("attack", "eps")


def format_measure(name, value, low, high) -> str:
    if value is None:
        return "-"
    if is_fraction(name):
        return format_with_interval(value, low, high)
    if low is not None and high is not None:
        return f"{value:.4g} ± {(high - low) / 2:.2g}"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def measure_header(name) -> str:
    return f"{name} (%)" if is_fraction(name) else name


def _raw(field, value):
    """A field as JSON output carries it: params as objects, the rest as stored."""
    return json.loads(value) if field in JSON_FIELDS and value is not None else value


def _finished(record) -> str:
    return datetime.datetime.fromtimestamp(record.finished).isoformat(timespec="seconds")


def shared_line(records, shown) -> str:
    """What every record has in common (and no column shows), e.g. "model mlp, seed 0"."""
    parts = []
    for field in FIELDS:
        values = {record.fields[field] for record in records}
        if field in shown or field == "checkpoint":  # the sha256 names the checkpoint
            continue
        if len(values) == 1 and None not in values and values != {"{}"}:
            parts.append(f"{field} {show_field(field, next(iter(values)))}")
    return ", ".join(parts)


# --- every row (long format) ---

def _varies(records, field) -> bool:
    if field == "attack_params":  # fgsm and fgsm_pred differ in label: the attack name says so
        return any(len({r.fields[field] for r in records if r.fields["attack"] == attack}) > 1
                   for attack in {r.fields["attack"] for r in records})
    return len({record.fields[field] for record in records}) > 1


def long_fields(records, with_run) -> list[str]:
    shown = [field for field in FIELDS if field in ALWAYS_SHOWN or _varies(records, field)]
    return shown + (["run"] if with_run else [])


def reading_order(records) -> list:
    """Grouped by what was measured (model, defense, ...), then attack and eps; newest run first."""
    last = ("attack", "attack_params", "eps")
    order = [field for field in FIELDS if field not in last] + list(last)
    return sorted(records, key=lambda r: (*(sort_key(r.fields[f]) for f in order), -r.finished))


def long_text(records, measures, with_run):
    """(title, headers, body, numeric column indexes) of the long table."""
    records = reading_order(records)
    fields = long_fields(records, with_run)
    body = [[show_field(f, r.fields[f]) if f != "run" else r.run_dir for f in fields]
            + [format_measure(m, *measure(r, m)) for m in measures] for r in records]
    numeric = set(range(len(fields), len(fields) + len(measures))) | {fields.index("eps")}
    return (shared_line(records, fields), fields + [measure_header(m) for m in measures],
            body, numeric)


def long_records(records, measures) -> list[dict]:
    """One flat record per row: every field, each measure with its interval, the run."""
    out = []
    for record in reading_order(records):
        item = {field: _raw(field, record.fields[field]) for field in FIELDS}
        for name in measures:
            item.update(zip((name, f"{name}_ci_low", f"{name}_ci_high"), measure(record, name)))
        item.update(run_dir=record.run_dir, finished=_finished(record))
        out.append(item)
    return out


# --- pivot ---

def col_label(pivot, col_key) -> str:
    return " ".join(show_field(field, value) for field, value in zip(pivot.cols, col_key)) or pivot.measure


def pivot_text(pivot, records):
    name = pivot.measure
    headers = [*pivot.rows, *(col_label(pivot, key) for key in pivot.col_keys)] or [name]
    body = []
    for row_key in pivot.row_keys:
        cells = [pivot.cells.get((row_key, col_key)) for col_key in pivot.col_keys]
        body.append([*(show_field(f, v) for f, v in zip(pivot.rows, row_key)),
                     *("-" if c is None else format_measure(name, *measure(c, name)) for c in cells)])
    numeric = set(range(len(pivot.rows), len(headers)))
    layout = ", ".join(part for part in (
        f"{', '.join(pivot.rows)} down" if pivot.rows else "",
        f"{', '.join(pivot.cols)} across" if pivot.cols else "") if part)
    shared = shared_line(records, pivot.rows + pivot.cols)
    title = f"{measure_header(name)}: {layout}" + (f"; {shared}" if shared else "")
    return title, headers, body, numeric


def pivot_csv(pivot) -> str:
    header = list(pivot.rows)
    for col_key in pivot.col_keys:
        label = col_label(pivot, col_key)
        header += [label, f"{label} ci_low", f"{label} ci_high"]
    body = []
    for row_key in pivot.row_keys:
        line = [csv_value(value) for value in row_key]
        for col_key in pivot.col_keys:
            cell = pivot.cells.get((row_key, col_key))
            line += ["", "", ""] if cell is None else [csv_value(v) for v in measure(cell, pivot.measure)]
        body.append(line)
    return csv_text(header, body)


def pivot_json(pivot) -> str:
    cells = []
    for (row_key, col_key), record in sorted(pivot.cells.items(), key=lambda item: (
            pivot.row_keys.index(item[0][0]), pivot.col_keys.index(item[0][1]))):
        value, low, high = measure(record, pivot.measure)
        fields = dict(zip(pivot.rows + pivot.cols, row_key + col_key))
        cells.append({**{f: _raw(f, v) for f, v in fields.items()}, "value": value, "ci_low": low,
                      "ci_high": high, "run_dir": record.run_dir})
    return json.dumps({"measure": pivot.measure, "rows": pivot.rows, "cols": pivot.cols,
                       "cells": cells}, indent=2) + "\n"


# --- output ---

def markdown(title, headers, body, numeric) -> str:
    return (f"{title}\n\n" if title else "") + markdown_table(headers, body, numeric)


def print_rich(title, headers, body, numeric) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title or None)
    for index, header in enumerate(headers):
        # fold, not ellipsis: a narrow terminal must wrap numbers, never cut them
        table.add_column(header, justify="right" if index in numeric else "left", overflow="fold")
    for line in body:
        table.add_row(*line)
    Console().print(table)


def long_csv(items) -> str:
    header = list(items[0]) if items else list(FIELDS)
    return csv_text(header, [[csv_value(item.get(key)) for key in header] for item in items])


def long_json(items) -> str:
    return json.dumps(items, indent=2) + "\n"
