"""Per-point outcomes of every row, in `points.npz` beside results.json.

One boolean array per row (does the point count as correct under that row's attack and
protocol), its top-5 counterpart, and the clean outcomes. They let the notes pair two rows
point by point (McNemar's test), the worst case combine attacks and a resumed run keep its
finished rows. numpy only (no torch): `robust aggregate` reads them too.
"""

import io
from pathlib import Path

from robustbench_cli.reporting.atomic import atomic_write_bytes
from robustbench_cli.reporting.rows import series_name

POINTS_FILE = "points.npz"
CLEAN = "clean"
TOP5_SUFFIX = ":top5"


def row_key(row) -> str:
    """The name of a row's outcomes: series@eps (the series names a predicted-label run),
    plus the check it belongs to (sanity)."""
    key = f"{series_name(row)}@{float(row['eps'])!r}"
    return f"{key}#{row['check']}" if row.get("check") else key


def write_points(run_dir, arrays: dict) -> None:
    """Save {name: array} atomically (a kill leaves the previous complete file)."""
    import numpy as np

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{name: np.asarray(value) for name, value in arrays.items()})
    atomic_write_bytes(Path(run_dir) / POINTS_FILE, buffer.getvalue())


def read_points(run_dir) -> dict:
    """{name: array} from a run folder; empty when it has none or it is unreadable."""
    path = Path(run_dir) / POINTS_FILE
    if not path.is_file():
        return {}
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError):
        return {}


def row_outcomes(rows, points: dict) -> list:
    """Per row, {"correct": its per-point outcomes, "clean": the clean ones} or None when the
    folder has no outcomes for it."""
    clean = points.get(CLEAN)
    outcomes = []
    for row in rows:
        correct = points.get(row_key(row))
        outcomes.append(None if correct is None else {"correct": correct, "clean": clean})
    return outcomes
