"""The end of a single `robust eval`/`robust detect` run adds its rows to the results index.

Jobs of a multirun never write it: cluster jobs must not share one SQLite file, so their
folders are ingested afterwards (`robust results ingest DIR`, or `robust results`).
"""

import sys


def index_run(cfg, run_dir) -> None:
    """Ingest `run_dir` into cfg.results.db when cfg.results.index is true, outside multiruns.

    A failure (a locked or unwritable index) only warns: the run's own files are written.
    """
    from robustbench_cli.commands.hydra_app import is_multirun
    from robustbench_cli.results.index import ingest

    settings = cfg.get("results")
    if not settings or not settings.get("index") or is_multirun():
        return
    try:
        added = ingest(settings.db, [run_dir])
    except Exception as error:  # noqa: BLE001 - the index is derived; the run must survive
        print(f"warning: results not indexed in {settings.db} ({type(error).__name__}: {error}); "
              f"later: robust results ingest {run_dir}", file=sys.stderr)
    else:
        print(f"indexed {added} row(s) in {settings.db} (query them: robust results)")
