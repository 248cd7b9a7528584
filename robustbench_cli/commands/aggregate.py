"""`robust aggregate SWEEP_DIR`: rebuild a multirun's summary tables from its job folders."""

import sys

USAGE = """usage: robust aggregate SWEEP_DIR

Rebuilds SWEEP_DIR/summary.csv, summary.md and accuracy_vs_eps.png from the results.json
(or error.json, for failed jobs) in each job folder of a `robust eval -m` or
`robust detect -m` sweep."""


def main() -> int:
    args = sys.argv[1:]
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print(USAGE, file=sys.stdout if args[:1] in (["-h"], ["--help"]) else sys.stderr)
        return 0 if args[:1] in (["-h"], ["--help"]) else 2
    from pathlib import Path

    from robustbench_cli.errors import UserError
    from robustbench_cli.reporting import aggregate_sweep

    sweep = Path(args[0])
    try:
        if not sweep.is_dir():
            raise UserError(f"not a folder: {sweep}")
        summary = aggregate_sweep(sweep)
    except UserError as error:
        print(f"robust aggregate: error: {error}", file=sys.stderr)
        return 2
    print((sweep / "summary.md").read_text())
    for failure in summary["failed"]:
        print(f"failed job {failure['job']}: {failure['error']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
