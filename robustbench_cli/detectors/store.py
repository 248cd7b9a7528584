"""Saves each finished detection row at once, so an interrupted `robust detect` resumes.

results.json (and .csv/.md) hold the rows finished so far; points.npz holds each attack
row's per-point record (attacked, clean_correct, correct, rejected, scores, mutants) under
`<attack>@<eps>:<field>`. A resumed run recalibrates the detector (seeded, so the same)
and measures only the rows that are missing.
"""

from pathlib import Path

import torch

from robustbench_cli.detectors.runner import CLEAN, Measured
from robustbench_cli.evaluation.row_store import finished_rows
from robustbench_cli.reporting.detection import write_detection_results
from robustbench_cli.reporting.points import read_points, row_key, write_points

# What must match for a finished row to be reused.
IDENTITY_KEYS = ("model", "dataset", "checkpoint_sha256", "seed", "n", "protocol", "detector",
                 "detector_params")


class DetectionStore:
    def __init__(self, run_dir, identity: dict):
        self.run_dir = Path(run_dir)
        self.identity = identity
        self.rows: list[dict] = []
        self.arrays: dict = {}

    def save(self, row: dict, measured: Measured) -> None:
        row = {**row, **self.identity}
        self.rows.append(row)
        key = row_key(row)
        self.arrays.update({f"{key}:{field}": value.numpy() for field, value in measured.arrays.items()})
        write_points(self.run_dir, self.arrays)
        write_detection_results(self.run_dir, self.rows)

    def load(self) -> dict:
        """Rows finished by an earlier run into this folder, keyed by (attack, eps)."""
        arrays = read_points(self.run_dir)
        if not arrays:
            return {}
        finished = {}
        for row in finished_rows(self.run_dir, self.identity, IDENTITY_KEYS):
            if (row["attack"], row["eps"]) == CLEAN:
                continue
            prefix = row_key(row) + ":"
            measured = {name[len(prefix):]: torch.from_numpy(value.copy())
                        for name, value in arrays.items() if name.startswith(prefix)}
            if measured:
                self.arrays.update({prefix + field: value.numpy() for field, value in measured.items()})
                finished[row["attack"], row["eps"]] = Measured(measured, row.get("seconds", 0.0))
        return finished
