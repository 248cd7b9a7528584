"""A pivot table of one measure: the values of `rows` fields down, of `cols` fields across.

Every cell must hold one result; when several land on one cell, the fields they still differ
in are named, so the user can filter on one or move it into rows/cols.
"""

from collections import defaultdict
from dataclasses import dataclass

from robustbench_cli.errors import UserError
from robustbench_cli.results.fields import FIELDS, show_field, sort_key


@dataclass
class Pivot:
    rows: list  # field names down the side
    cols: list  # field names across the top
    measure: str
    row_keys: list  # sorted distinct tuples of row-field values
    col_keys: list
    cells: dict  # (row key, col key) -> Record


def check_fields(rows, cols) -> None:
    for field in [*rows, *cols]:
        if field not in FIELDS:
            raise UserError(f"cannot pivot on {field} (fields: {', '.join(FIELDS)})")
    both = set(rows) & set(cols)
    if both or len(set(rows)) < len(rows) or len(set(cols)) < len(cols):
        twice = ", ".join(sorted(both)) or ", ".join(rows + cols)
        raise UserError(f"a field appears twice in rows/cols: {twice}")


def _tuple_order(values):
    return tuple(sort_key(value) for value in values)


def _varying(group) -> dict:
    """field -> distinct values, for the fields the records of one cell differ in."""
    varying = {}
    for field in FIELDS:
        values = {record.fields[field] for record in group}
        if len(values) > 1:
            varying[field] = sorted(values, key=sort_key)
    return varying


def clash_message(position: str, group, placed) -> str:
    varying = {field: values for field, values in _varying(group).items() if field not in placed}
    if not varying:  # dedup=false: the same result from several runs
        return (f"{len(group)} results land on one cell ({position}): the same result from "
                f"{len(group)} runs (dedup=false keeps them all)")
    parts = [f"{field} ({', '.join(show_field(field, value) for value in values[:3])}"
             f"{', ...' if len(values) > 3 else ''})" for field, values in varying.items()]
    field, values = next(iter(varying.items()))
    example = values[0] if field == "checkpoint" else show_field(field, values[0])
    return (f"{len(group)} results land on one cell ({position}): they differ in {'; '.join(parts)}; "
            f"add a filter (e.g. {field}={example}) or put {field} into rows= or cols=")


def pivot(records, rows, cols, measure) -> Pivot:
    """Place each record in its cell; UserError when two land in one."""
    check_fields(rows, cols)
    groups = defaultdict(list)
    for record in records:
        key = (tuple(record.fields[f] for f in rows), tuple(record.fields[f] for f in cols))
        groups[key].append(record)
    for (row_key, col_key), group in groups.items():
        if len(group) > 1:
            position = ", ".join(f"{field}={show_field(field, value)}"
                                 for field, value in zip(rows + cols, row_key + col_key))
            raise UserError(clash_message(position or "the only cell", group, set(rows + cols)))
    row_keys = sorted({key[0] for key in groups}, key=_tuple_order)
    col_keys = sorted({key[1] for key in groups}, key=_tuple_order)
    return Pivot(list(rows), list(cols), measure, row_keys, col_keys,
                 {key: group[0] for key, group in groups.items()})
