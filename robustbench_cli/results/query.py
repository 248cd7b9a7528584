"""Choosing rows from the index: filters on fields, the newest run per identity, no sanity
checks unless asked; and reading a measure (with its interval) off a row."""

import json
import sqlite3
from dataclasses import dataclass

from robustbench_cli.checks import non_negative_int, number
from robustbench_cli.errors import UserError
from robustbench_cli.reporting.rows import eps_key
from robustbench_cli.results.fields import FIELDS, INTEGER_FIELDS, JSON_FIELDS, canonical_json

PREFIX_FIELDS = ("checkpoint_sha256", "git_revision")  # a few leading hex digits are enough


@dataclass
class Record:
    """One result row from the index, with the run it came from."""

    fields: dict  # FIELDS -> value as stored (attack: series name, params: canonical JSON)
    row: dict     # the row as results.json has it
    run_dir: str
    finished: float  # run.json mtime
    git_revision: str | None


def _number(key, text, kind):
    """eps=0.1 or 8/255; seed=3, n=500."""
    return number(key, text) if kind is float else non_negative_int(key, text)


def filter_condition(key: str, text: str) -> tuple[str, list]:
    """SQL for `key=text`; plain fields take a comma list (attack=fgsm,pgd_linf)."""
    column = f'r."{key}"'  # r: the results table (runs has a kind column too)
    if key in JSON_FIELDS:
        try:
            return f"{column} = ?", [canonical_json(json.loads(text))]
        except json.JSONDecodeError:
            raise UserError(f"{key} takes JSON, e.g. {key}='{{\"steps\": 10}}'") from None
    values = [value.strip() for value in text.split(",")]
    if key == "eps":
        values = [eps_key(_number(key, value, float)) for value in values]
    elif key in INTEGER_FIELDS:
        values = [_number(key, value, int) for value in values]
    if key in PREFIX_FIELDS:
        parts = [f"substr({column}, 1, {len(value)}) = ?" for value in values]
        return "(" + " OR ".join(parts) + ")", values
    return f"{column} IN ({', '.join('?' * len(values))})", values


def select(conn: sqlite3.Connection, filters: dict, dedup=True, checks=False) -> list[Record]:
    """Rows matching every filter, newest run first; with `dedup` only the newest row of each
    identity; sanity-check rows only with `checks` (or a check= filter)."""
    conditions, params = [], []
    for key, text in filters.items():
        if key not in FIELDS:
            raise UserError(f"cannot filter on {key} (fields: {', '.join(FIELDS)})")
        condition, values = filter_condition(key, text)
        conditions.append(condition)
        params += values
    if not checks and "check" not in filters:
        conditions.append('r."check" IS NULL')
    where = " AND ".join(conditions) or "1"
    query = (f"SELECT r.*, runs.finished FROM results AS r JOIN runs USING (run_dir) "
             f"WHERE {where} ORDER BY runs.finished DESC, r.run_dir DESC, r.position")
    records, seen = [], set()
    for row in conn.execute(query, params):
        if dedup and row["identity_key"] in seen:
            continue
        seen.add(row["identity_key"])
        records.append(Record({key: row[key] for key in FIELDS}, json.loads(row["row_json"]),
                              row["run_dir"], row["finished"], row["git_revision"]))
    return records


def is_fraction(measure: str) -> bool:
    """Measures shown in percent: accuracies, rates, top-5 (not counts such as top5_correct)."""
    return ("accuracy" in measure or "rate" in measure or measure.startswith(("top5", "clean_top5"))) \
        and not measure.endswith("correct")


def interval_keys(measure: str) -> tuple[str, str]:
    """Where a row keeps the 95% interval of a measure (if it has one)."""
    return ("ci_low", "ci_high") if measure == "accuracy" else (f"{measure}_ci_low", f"{measure}_ci_high")


def _numeric(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def measure(record: Record, name: str) -> tuple:
    """(value, ci_low, ci_high) of a measure in one row; None where missing."""
    low, high = interval_keys(name)
    return tuple(_numeric(record.row.get(key)) for key in (name, low, high))


def default_measure(records) -> str:
    """accuracy, or detection_rate when every row is a detector's."""
    if records and all(record.fields["kind"] == "detect" for record in records):
        return "detection_rate"
    return "accuracy"


def check_measure(records, name: str) -> None:
    """A measure no selected row has is a typo: say which ones they have."""
    if any(measure(record, name)[0] is not None for record in records):
        return
    known = sorted({key for record in records for key, value in record.row.items()
                    if _numeric(value) is not None and not key.endswith(("_ci_low", "_ci_high"))
                    and key not in ("ci_low", "ci_high", "eps", "n", "seed")})
    raise UserError(f"no selected row has a measure {name} (measures: {', '.join(known)})")
