"""The results index: an SQLite file listing every eval/detect result row of many run folders.

Run folders stay the source of truth; the index can always be rebuilt from them
(`robust results ingest DIR`). No torch import here: `robust results` must answer fast.
"""

from robustbench_cli.results.hook import index_run
from robustbench_cli.results.index import find_run_dirs, ingest

__all__ = ["find_run_dirs", "index_run", "ingest"]
