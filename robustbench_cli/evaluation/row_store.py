"""Saves each finished result row at once, so an interrupted `robust eval` resumes.

results.json (and .csv/.md) hold the rows finished so far; robust_points.pt holds, per
row, which points survived (tensor-only, for the worst case over attacks). Both are
written atomically: a kill leaves the previous complete version, never half a file.
"""

import json
import os
import tempfile
from pathlib import Path

import torch

from robustbench_cli.errors import UserError
from robustbench_cli.evaluation.runner import WORST_CASE, Finished
from robustbench_cli.reporting import table_notes, write_results

POINTS_FILE = "robust_points.pt"
IDENTITY_KEYS = ("model", "dataset", "checkpoint_sha256", "n", "seed")


class RowStore:
    def __init__(self, run_dir, identity: dict):
        self.run_dir = Path(run_dir)
        self.identity = identity
        self.rows: list[dict] = []
        self.points: dict[str, torch.Tensor] = {}

    def save(self, finished: Finished) -> None:
        row = {**finished.row, **self.identity}
        self.rows.append(row)
        if row["attack"] != WORST_CASE:
            self.points[_key(row["attack"], row["eps"])] = finished.robust
            self._write_points()
        write_results(self.run_dir, self.rows, table_notes(self.rows))

    def load(self) -> dict:
        """Rows finished by an earlier run into this folder, keyed by (attack, eps)."""
        results, points_file = self.run_dir / "results.json", self.run_dir / POINTS_FILE
        if not results.is_file() or not points_file.is_file():
            return {}
        rows = json.loads(results.read_text())
        points = torch.load(points_file, weights_only=True)
        for row in rows:
            for key in IDENTITY_KEYS:
                if key in self.identity and row.get(key) != self.identity[key]:
                    raise UserError(f"cannot resume in {self.run_dir}: its results have {key}="
                                    f"{row.get(key)!r}, this run {self.identity[key]!r}")
        return {(r["attack"], r["eps"]): Finished(_strip(r, self.identity), points[key])
                for r in rows if r["attack"] != WORST_CASE
                and (key := _key(r["attack"], r["eps"])) in points}

    def _write_points(self) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.run_dir, prefix=".robust_points.", suffix=".tmp")
        os.close(fd)
        try:
            torch.save(self.points, tmp)
            os.replace(tmp, self.run_dir / POINTS_FILE)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def _key(attack: str, eps: float) -> str:
    return f"{attack}@{eps!r}"


def _strip(row: dict, identity: dict) -> dict:
    return {k: v for k, v in row.items() if k not in identity}
