"""`robust results`: query the results index (an SQLite file of every eval/detect result row).

Not a Hydra app: a query is a handful of KEY=VALUE words, and it must answer fast (no torch).
"""

import sys

from robustbench_cli.checks import flag
from robustbench_cli.errors import UserError

USAGE = """usage: robust results [FILTER=VALUE...] [rows=F[,F]] [cols=F[,F]] [value=MEASURE]
                      [format=md|csv|json] [dedup=false] [checks=true] [root=DIR] [db=PATH]
       robust results ingest DIR... [db=PATH]

Shows result rows of `robust eval` and `robust detect` runs from the results index, first
adding what is new under root (default: outputs; db default: ROOT/results.sqlite). A single
run adds its own rows when it ends; multirun jobs never do: `robust results` or
`robust results ingest DIR` picks them up. `ingest` adds the run folders (results.json next
to run.json) at or below each DIR to db (default outputs/results.sqlite); it is idempotent.

filters:   {fields}
           (eps=0.1 or 8/255; attack=fgsm,pgd_linf: either; checkpoint_sha256: a prefix)
rows/cols: pivot one measure with those fields down/across, e.g. rows=attack cols=eps
value:     the measure (default accuracy; detection_rate when every row is a detector's)
dedup:     true (default): of runs with the same identity the newest wins; false: all
checks:    true: include sanity-check rows
format:    md | csv | json (default: a table on the terminal, markdown when piped)

examples:
  robust results
  robust results model=mlp attack=fgsm rows=attack cols=eps
  robust results kind=detect rows=detector cols=eps format=csv"""

OPTIONS = ("db", "root", "rows", "cols", "value", "format", "dedup", "checks")


def parse(args) -> tuple[list[str], dict]:
    """(positional words, {key: value}); a repeated or unknown key is an error."""
    from robustbench_cli.results.fields import FIELDS

    words, options = [], {}
    for arg in args:
        if "=" not in arg:
            words.append(arg)
            continue
        key, value = arg.split("=", 1)
        if key not in OPTIONS and key not in FIELDS:
            raise UserError(f"unknown key '{key}' (options: {', '.join(OPTIONS)}; "
                           f"filters: {', '.join(FIELDS)})")
        if key in options:
            raise UserError(f"{key} given twice (several values: {key}=A,B)")
        options[key] = value
    return words, options


def ingest_command(dirs, options) -> int:
    from pathlib import Path

    from robustbench_cli.results.index import ingest_report

    unknown = set(options) - {"db"}
    if unknown or not dirs:
        raise UserError("usage: robust results ingest DIR... [db=PATH]"
                       + (f" ({', '.join(sorted(unknown))} not accepted here)" if unknown else ""))
    for folder in map(Path, dirs):
        if not folder.is_dir():
            raise UserError(f"not a folder: {folder}")
    db = Path(options.get("db", "outputs/results.sqlite"))
    print(f"{ingest_report(db, dirs).summary()} into {db}")
    return 0


def query_command(words, options) -> int:
    from pathlib import Path

    from robustbench_cli.results import render
    from robustbench_cli.results.index import connect, ingest_report
    from robustbench_cli.results.pivot import check_fields, pivot
    from robustbench_cli.results.query import check_measure, default_measure, select

    if words:
        raise UserError(f"unexpected argument '{words[0]}' (filters are KEY=VALUE; see --help)")
    fmt = options.get("format")
    if fmt is not None and fmt not in render.FORMATS:
        raise UserError(f"format={fmt}: choose from {', '.join(render.FORMATS)}")
    dedup = flag("dedup", options.get("dedup", "true"))
    checks = flag("checks", options.get("checks", "false"))
    rows, cols = ([f for f in options.get(key, "").split(",") if f] for key in ("rows", "cols"))
    check_fields(rows, cols)
    root = Path(options.get("root", "outputs"))
    db = Path(options.get("db", root / "results.sqlite"))
    if root.is_dir():
        report = ingest_report(db, [root])
        if report.rows or report.dropped:
            print(f"results index {db}: {report.summary()} under {root}", file=sys.stderr)
    elif not db.is_file():
        raise UserError(f"no results index at {db} and no folder {root} to ingest "
                       f"(run robust eval first, or give root=DIR / db=PATH)")
    filters = {key: value for key, value in options.items() if key not in OPTIONS}
    conn = connect(db, create=False)
    try:
        records = select(conn, filters, dedup=dedup, checks=checks)
    finally:
        conn.close()
    if not records:
        print("no result rows match", file=sys.stderr)
        if fmt == "json":
            print("[]")
        return 0
    name = options.get("value") or default_measure(records)
    check_measure(records, name)
    if rows or cols:
        table = pivot(records, rows, cols, name)
        if fmt == "csv":
            return _write(render.pivot_csv(table))
        if fmt == "json":
            return _write(render.pivot_json(table))
        return _show(fmt, render.pivot_text(table, records))
    measures = [name] if "value" in options else [
        m for m in ("accuracy", "detection_rate") if any(r.row.get(m) is not None for r in records)]
    if fmt in ("csv", "json"):
        items = render.long_records(records, measures)
        return _write(render.long_csv(items) if fmt == "csv" else render.long_json(items))
    return _show(fmt, render.long_text(records, measures, with_run=not dedup))


def _write(text) -> int:
    sys.stdout.write(text)
    return 0


def _show(fmt, table) -> int:
    from robustbench_cli.results import render

    if fmt is None and sys.stdout.isatty():
        render.print_rich(*table)
    else:
        sys.stdout.write(render.markdown(*table))
    return 0


def main() -> int:
    import sqlite3

    args = sys.argv[1:]
    if any(arg in ("-h", "--help", "help") for arg in args[:1]) or "--help" in args or "-h" in args:
        from robustbench_cli.results.fields import FIELDS

        print(USAGE.format(fields=", ".join(FIELDS)))
        return 0
    try:
        if args[:1] == ["ingest"]:
            words, options = parse(args[1:])
            return ingest_command(words, options)
        words, options = parse(args)
        return query_command(words, options)
    except (UserError, sqlite3.Error, OSError) as error:
        print(f"robust results: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
