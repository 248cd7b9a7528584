"""Saves each finished result row at once, so an interrupted `robust eval` resumes.

results.json (and .csv/.md) hold the rows finished so far; points.npz holds, per row, each
point's outcome (for the worst case over attacks, the paired tests of the notes and
resuming). Both are written atomically: a kill leaves the previous complete version, never
half a file.
"""

import json
from pathlib import Path

import torch

from robustbench_cli.errors import UserError
from robustbench_cli.evaluation.runner import WORST_CASE, Finished
from robustbench_cli.reporting import table_notes, write_results
from robustbench_cli.reporting.points import (
    CLEAN,
    TOP5_SUFFIX,
    read_points,
    row_key,
    row_outcomes,
    write_points,
)
from robustbench_cli.reporting.rows import series_name

IDENTITY_KEYS = ("model", "dataset", "checkpoint_sha256", "n", "seed", "protocol", "precision")
OPTIONAL_KEYS = ("precision",)  # absent from a run's identity and rows at the default (32)


def finished_rows(run_dir: Path, identity: dict, keys) -> list[dict]:
    """The rows an interrupted run left in run_dir/results.json ([] when none); a row whose
    `keys` differ from this run's `identity` makes resuming there a one-line error."""
    results = run_dir / "results.json"
    if not results.is_file():
        return []
    rows = json.loads(results.read_text())
    for row in rows:
        for key in keys:
            if (key in identity or key in OPTIONAL_KEYS) and row.get(key) != identity.get(key):
                raise UserError(f"cannot resume in {run_dir}: its results have {key}="
                                f"{row.get(key)!r}, this run {identity.get(key)!r}")
    return rows


class RowStore:
    def __init__(self, run_dir, identity: dict):
        self.run_dir = Path(run_dir)
        self.identity = identity
        self.rows: list[dict] = []
        self.points: dict = {}  # row_key -> numpy bool array (and CLEAN, and top-5 arrays)

    def notes(self) -> list[str]:
        return table_notes(self.rows, row_outcomes(self.rows, self.points))

    def save(self, finished: Finished) -> None:
        row = {**finished.row, **self.identity}
        self.rows.append(row)
        key = row_key(row)
        self.points[key] = finished.correct.numpy()
        if finished.top5 is not None:
            self.points[key + TOP5_SUFFIX] = finished.top5.numpy()
        if finished.clean is not None:
            self.points[CLEAN] = finished.clean.numpy()
        write_points(self.run_dir, self.points)
        write_results(self.run_dir, self.rows, self.notes())

    def load(self) -> dict:
        """Rows finished by an earlier run into this folder, keyed as AttackSpec.key(eps)."""
        points = read_points(self.run_dir)
        if not points:
            return {}
        rows = finished_rows(self.run_dir, self.identity, IDENTITY_KEYS)
        clean = _tensor(points.get(CLEAN))
        return {(series_name(r), r["eps"], r.get("check")):
                Finished(_strip(r, self.identity), _tensor(points[key]),
                         _tensor(points.get(key + TOP5_SUFFIX)), clean)
                for r in rows if r["attack"] != WORST_CASE and (key := row_key(r)) in points}


def _tensor(array):
    return None if array is None else torch.from_numpy(array.copy())


def _strip(row: dict, identity: dict) -> dict:
    return {k: v for k, v in row.items() if k not in identity}
