"""The index file: its schema, and adding run folders to it.

Ingesting is idempotent: a run folder whose results.json and run.json are unchanged since
the last ingest is skipped after a stat; one whose results.json changed (a resumed run) has
its rows replaced; one that is gone from a scanned folder is dropped. Everything a call adds
lands in one transaction, so a crash leaves the index as it was.
"""

import hashlib
import json
import sqlite3
import sys
import time
from pathlib import Path

from robustbench_cli.reporting.run_files import RESULTS_JSON
from robustbench_cli.results.fields import FIELDS, identity_key, row_fields, row_kind

SCHEMA_VERSION = 1  # another version in a file: the index is rebuilt from the run folders
RUN_JSON = "run.json"
MEASURE_COLUMNS = ("accuracy", "ci_low", "ci_high")  # the rest: json_extract(row_json, '$.key')
FIELD_TYPES = {"eps": "REAL", "n": "INTEGER", "seed": "INTEGER"}

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    run_dir TEXT PRIMARY KEY,     -- absolute path of the run (or multirun job) folder
    kind TEXT NOT NULL,           -- eval | detect
    git_revision TEXT,            -- from run.json
    finished REAL NOT NULL,       -- run.json mtime (unix seconds): the newest run wins
    ingested REAL NOT NULL,       -- unix seconds
    results_sha256 TEXT NOT NULL, -- of results.json: changed means re-ingest
    stamp TEXT NOT NULL           -- mtime_ns and size of results.json and run.json
);
CREATE TABLE IF NOT EXISTS results (
    run_dir TEXT NOT NULL,
    position INTEGER NOT NULL,    -- the row's index in results.json
    identity_key TEXT NOT NULL,   -- sha256 of the identity fields
    {", ".join(f'"{name}" {FIELD_TYPES.get(name, "TEXT")}' for name in FIELDS)},
    {", ".join(f"{name} REAL" for name in MEASURE_COLUMNS)},
    row_json TEXT NOT NULL,       -- the row as results.json has it
    PRIMARY KEY (run_dir, position)
);
CREATE INDEX IF NOT EXISTS results_identity ON results (identity_key);
"""


def connect(db_path, create=True) -> sqlite3.Connection:
    """Open the index (creating it and its folder when `create`); waits up to 30 s on a lock
    held by another run that is writing its rows."""
    db_path = Path(db_path)
    if create:
        db_path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: transactions are begun and ended explicitly (see ingest_report)
    conn = sqlite3.connect(db_path, timeout=30, isolation_level=None)
    conn.row_factory = sqlite3.Row
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version not in (0, SCHEMA_VERSION):
        conn.executescript("DROP TABLE IF EXISTS results; DROP TABLE IF EXISTS runs;")
    if version != SCHEMA_VERSION:
        conn.executescript(SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")
    return conn


INDEXED_COMMANDS = ("eval", "detect")


def find_run_dirs(root) -> list[Path]:
    """Run folders at or below `root`: those with results.json next to a run.json (a failed
    multirun job has error.json instead; a training run metrics.json)."""
    root = Path(root)
    return sorted(path.parent.resolve() for path in root.rglob(RESULTS_JSON)
                  if (path.parent / RUN_JSON).is_file())


def warn(message: str) -> None:
    print(f"robust results: warning: {message}", file=sys.stderr)


def _stamp(run_dir: Path) -> str:
    stats = [(run_dir / name).stat() for name in (RESULTS_JSON, RUN_JSON)]
    return " ".join(f"{stat.st_mtime_ns}:{stat.st_size}" for stat in stats)


def _read_run(run_dir: Path):
    """(rows, run record, results sha256); ValueError says what is wrong with the files."""
    data = (run_dir / RESULTS_JSON).read_bytes()
    try:
        rows = json.loads(data)
        record = json.loads((run_dir / RUN_JSON).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"not valid JSON ({error})") from None
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ValueError("results.json is not a list of rows")
    if not isinstance(record, dict):
        raise ValueError("run.json is not an object")
    return rows, record, hashlib.sha256(data).hexdigest()


def _row_values(run_dir: str, rows, git_revision) -> list[list]:
    """The results-table values of each row; ValueError for a row that is not a result row."""
    values = []
    for position, row in enumerate(rows):
        try:
            fields = row_fields(row, git_revision)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"row {position} is not a result row "
                             f"({type(error).__name__}: {error})") from None
        measures = [row.get(name) if isinstance(row.get(name), (int, float)) else None
                    for name in MEASURE_COLUMNS]
        values.append([run_dir, position, identity_key(fields), *fields.values(), *measures,
                       json.dumps(row, default=str)])
    return values


INSERT_ROW = "INSERT INTO results ({}) VALUES ({})".format(
    ", ".join(f'"{name}"' for name in ["run_dir", "position", "identity_key", *FIELDS,
                                       *MEASURE_COLUMNS, "row_json"]),
    ", ".join("?" * (4 + len(FIELDS) + len(MEASURE_COLUMNS))))


def _ingest_run(conn, run_dir: Path, known: dict) -> int | None:
    """Rows added from one run folder; None when it was unchanged. Reads and checks every
    row before it writes, so a bad file changes nothing (ValueError, OSError)."""
    key = str(run_dir)
    stamp = _stamp(run_dir)
    if key in known and known[key]["stamp"] == stamp:
        return None
    rows, record, digest = _read_run(run_dir)
    if record.get("command", "eval") not in INDEXED_COMMANDS:  # e.g. a transfer matrix's rows
        return None
    finished = (run_dir / RUN_JSON).stat().st_mtime
    if key in known and known[key]["results_sha256"] == digest:  # touched, not changed
        conn.execute("UPDATE runs SET stamp = ?, finished = ? WHERE run_dir = ?", (stamp, finished, key))
        known[key] = {"stamp": stamp, "results_sha256": digest}
        return None
    git_revision = record.get("git_revision")
    values = _row_values(key, rows, git_revision)
    kind = "detect" if any(row_kind(row) == "detect" for row in rows) else "eval"
    conn.execute("DELETE FROM results WHERE run_dir = ?", (key,))
    conn.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (key, kind, git_revision, finished, time.time(), digest, stamp))
    conn.executemany(INSERT_ROW, values)
    known[key] = {"stamp": stamp, "results_sha256": digest}
    return len(values)


def _drop_gone(conn, root: Path, present: set) -> int:
    """Forget runs below `root` whose folder (or results.json) no longer exists."""
    gone = [row["run_dir"] for row in conn.execute("SELECT run_dir FROM runs")
            if Path(row["run_dir"]).is_relative_to(root) and row["run_dir"] not in present]
    for run_dir in gone:
        conn.execute("DELETE FROM results WHERE run_dir = ?", (run_dir,))
        conn.execute("DELETE FROM runs WHERE run_dir = ?", (run_dir,))
    return len(gone)


class IngestReport:
    """What one ingest did: rows added, from how many run folders, how many were dropped."""

    def __init__(self):
        self.rows = self.runs = self.dropped = 0

    def __int__(self) -> int:
        return self.rows

    def summary(self) -> str:
        text = f"added {self.rows} row(s) from {self.runs} run folder(s)"
        return text + (f"; dropped {self.dropped} run folder(s) that are gone" if self.dropped else "")


def ingest_report(db_path, dirs, on_warning=warn) -> IngestReport:
    """Add the run folders at or below each of `dirs` to the index at `db_path`."""
    report = IngestReport()
    scans = [(root, find_run_dirs(root)) for root in map(Path, dirs)]  # before the lock: slow on big trees
    conn = connect(db_path)
    try:
        # IMMEDIATE: take the write lock first (waiting for another writer), so two runs
        # indexing at once queue up instead of failing on a lock upgrade.
        conn.execute("BEGIN IMMEDIATE")
        known = {row["run_dir"]: dict(row) for row in conn.execute("SELECT * FROM runs")}
        for root, run_dirs in scans:
            for run_dir in run_dirs:
                try:
                    added = _ingest_run(conn, run_dir, known)
                except (OSError, ValueError) as error:
                    on_warning(f"skipped {run_dir}: {error}")
                    continue
                if added is not None:
                    report.rows += added
                    report.runs += 1
            report.dropped += _drop_gone(conn, root.resolve(), {str(d) for d in run_dirs})
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()
    return report


def ingest(db_path, dirs, on_warning=warn) -> int:
    """Add the run folders at or below each of `dirs` to the index; the number of rows added."""
    return ingest_report(db_path, dirs, on_warning).rows
