"""A study's tables: rows of its stages' run folders pivoted into rows x columns, with the
document's numbers beside ours ("ours / paper" in each cell)."""

import json
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path

from robustbench_cli.errors import UserError
from robustbench_cli.reporting.formatting import csv_text, markdown_table
from robustbench_cli.reporting.rows import is_check, series_name
from robustbench_cli.studies.spec import Table


def stage_rows(stage: str, folder: Path) -> list[dict]:
    """The rows a finished stage gives a table: its results.json rows (eval, detect,
    transfer), else its metrics.json as one row (train); each with `stage` (and `series`:
    the attack with its label mode, fgsm_pred)."""
    results, metrics = folder / "results.json", folder / "metrics.json"
    if results.is_file():
        rows = json.loads(results.read_text())
    elif metrics.is_file():
        rows = [{k: v for k, v in json.loads(metrics.read_text()).items() if k != "config"}]
    else:
        return []
    for row in rows:
        row["stage"] = stage
        if "attack" in row:
            row["series"] = series_name(row)
    return rows


def key_text(value) -> str:
    """A row or column key as text: numbers (and fraction strings like 8/255) rounded, so the
    eps a run computed and the one a study file wrote land in one cell."""
    if isinstance(value, bool) or value is None:
        return str(value)
    try:
        number = float(Fraction(str(value).replace(" ", "")))
    except (ValueError, ZeroDivisionError):
        return str(value)
    return f"{number:.6g}"


def _matches(row: dict, where: dict) -> bool:
    for field, wanted in where.items():
        allowed = wanted if isinstance(wanted, list) else [wanted]
        if key_text(row.get(field)) not in {key_text(w) for w in allowed}:
            return False
    return "check" in where or not is_check(row)


@dataclass
class Pivot:
    row_keys: list[str]
    col_keys: list[str]
    cells: dict  # (row key, col key) -> value
    sources: dict  # (row key, col key) -> the row it came from (its interval, its stage)


def pivot(table: Table, rows: list[dict]) -> Pivot:
    """One value per (row, column); two rows on one cell is a one-line error naming the fields
    that tell them apart."""
    cells, sources = {}, {}
    row_keys, col_keys = [], []
    present = {key for row in rows for key in row}
    missing = [f for f in (table.value, table.rows, *table.cols, *table.where) if f not in present]
    if rows and missing:
        raise UserError(f"table {table.id}: its stages' rows have no field {', '.join(missing)} "
                        f"(they have: {', '.join(sorted(present))})")
    for row in (r for r in rows if _matches(r, table.where)):
        if table.value not in row or table.rows not in row or any(c not in row for c in table.cols):
            continue
        r, c = key_text(row[table.rows]), ", ".join(key_text(row[f]) for f in table.cols)
        if (r, c) in cells:
            other = sources[(r, c)]
            differ = sorted(k for k in set(row) | set(other)
                            if not isinstance(row.get(k), (dict, list)) and row.get(k) != other.get(k)
                            and k not in (table.value, "seconds", "ci_low", "ci_high", "correct"))
            raise UserError(f"table {table.id}: two rows for ({r}; {c}); they differ in "
                            f"{', '.join(differ[:6]) or 'nothing shown'}: add a `where:` filter or "
                            "put the field in rows/cols")
        cells[(r, c)], sources[(r, c)] = row[table.value], row
        row_keys += [r] if r not in row_keys else []
        col_keys += [c] if c not in col_keys else []
    for r, by_col in table.paper.items():
        r = key_text(r)
        row_keys += [r] if r not in row_keys else []
        for c in map(partial(_paper_column, table), by_col):
            col_keys += [c] if c not in col_keys else []
    return Pivot(row_keys, _sorted(col_keys), cells, sources)


def _sorted(keys: list[str]) -> list[str]:
    """Numeric columns (eps) in increasing order; others as they came."""
    try:
        return sorted(keys, key=float)
    except ValueError:
        return keys


def _paper_column(table: Table, col) -> str:
    """A column key of `paper:`: "0.1" for cols eps, "0.1, robust" for cols eps,protocol."""
    parts = str(col).split(",") if len(table.cols) > 1 else [col]
    return ", ".join(key_text(part.strip() if isinstance(part, str) else part) for part in parts)


def paper_value(table: Table, r: str, c: str):
    """The document's number for our cell (r, c), or None."""
    for row, by_col in table.paper.items():
        if key_text(row) == r:
            for col, value in by_col.items():
                if _paper_column(table, col) == c:
                    return value
    return None


def verdicts(table: Table, result: Pivot) -> list[tuple[str, str]]:
    """(what the document says, whether our cells show it) for each `expect` check: reproduced
    when the `more` cell exceeds the `than` cell; "within the 95% intervals" when both rows
    carry intervals that overlap (the direction may be noise)."""
    found = []
    for check in table.expect:
        # A number side is a constant: its own key, and its own value.
        keys = [side if isinstance(side, float) else (key_text(side[0]), _paper_column(table, side[1]))
                for side in (check.more, check.than)]
        values = [key if isinstance(key, float) else result.cells.get(key) for key in keys]
        if any(not isinstance(v, (int, float)) or isinstance(v, bool) for v in values):
            missing = " and ".join(f"({key[0]}; {key[1]})" for key, v in zip(keys, values)
                                   if v is None)
            found.append((check.says, f"not measured: no cell {missing or 'with a number'}"))
            continue
        outcome = "reproduced" if values[0] > values[1] else "NOT reproduced"
        shown = [_shown(table, v) for v in values]
        if shown[0] == shown[1]:  # a difference below the table's digits: show it
            shown = [_shown(table, v, extra_digits=2) for v in values]
        outcome += f" ({shown[0]} vs {shown[1]}"
        intervals = [None if isinstance(key, float) else _interval(result.sources[key], table.value)
                     for key in keys]
        if None not in intervals:
            (low_a, high_a), (low_b, high_b) = intervals
            if low_a <= high_b and low_b <= high_a:
                outcome += "; within the 95% intervals"
        found.append((check.says, outcome + ")"))
    return found


def _interval(row: dict, value: str):
    """The row's 95% interval of `value`: ci_low/ci_high (accuracy), top5_ci_* (top5),
    transfer_ci_* and error_ci_* (transfer and error rates); None when it has none."""
    prefix = {"accuracy": "", "transfer_rate": "transfer_", "error_rate": "error_"}.get(value, f"{value}_")
    low, high = row.get(f"{prefix}ci_low"), row.get(f"{prefix}ci_high")
    return None if low is None or high is None else (low, high)


def _shown(table: Table, value, extra_digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        digits = table.digits + extra_digits
        if table.percent:
            return f"{100 * value:.{digits}f}"
        return f"{value:.{digits + 2}g}"  # significant digits: gradients of 1e-20 stay readable
    return str(value)


def _eps_text(field: str, key: str) -> str:
    """An eps that is a whole number of 255ths reads as one (16/255, not 0.0627451)."""
    if field != "eps":
        return key
    try:
        levels = float(key) * 255
    except ValueError:
        return key
    return f"{round(levels)}/255" if levels and abs(levels - round(levels)) < 1e-4 else key


def table_markdown(table: Table, result: Pivot) -> str:
    has_paper = bool(table.paper)
    col_field = table.cols[0] if len(table.cols) == 1 else ""
    headers = [table.rows, *(_eps_text(col_field, c) for c in result.col_keys)]
    body = []
    for r in result.row_keys:
        line = [_eps_text(table.rows, r)]
        for c in result.col_keys:
            ours = _shown(table, result.cells.get((r, c)))
            if has_paper:
                theirs = paper_value(table, r, c)
                line.append(f"{ours} / {'-' if theirs is None else theirs}")
            else:
                line.append(ours)
        body.append(line)
    legend = (f"{table.value}{' (%)' if table.percent else ''} by {table.rows} (rows) and "
              f"{', '.join(table.cols)} (columns)")
    if has_paper:
        legend += "; each cell: ours / the document's"
    return f"{legend}\n\n{markdown_table(headers, body, right_aligned=range(1, len(headers)))}"


def table_csv(table: Table, result: Pivot) -> str:
    """Long format: one line per cell, ours and the document's number."""
    header = [table.rows, ", ".join(table.cols), table.value, "paper"]
    body = [[r, c, result.cells.get((r, c)), paper_value(table, r, c)]
            for r in result.row_keys for c in result.col_keys]
    return csv_text(header, body)
