"""`robust study NAME [tables=[ID,...]] [scale=small|full] [output_dir=DIR] [dry_run=true]`."""

import sys

USAGE = """usage: robust study NAME [tables=[ID,...]] [scale=small|full] [output_dir=DIR]
                          [dry_run=true] [report_dir=DIR] [OVERRIDE...]

Runs the staged study experiments/studies/NAME.yaml (or a study file given by its path):
each stage is a `robust` command in a folder of its own under OUTPUT_DIR/studies/NAME/,
reused when its resolved config and input checkpoints have not changed, resumed when it was
interrupted. Then writes the study's tables (tables/ID.md, .csv) and report.md there.

  tables=[ID,...]   only these tables, and the stages they need
  scale=full        the document's own setting (for GPU hosts); default small
  output_dir=DIR    default outputs
  dry_run=true      show which stages would run, are cached or would resume
  report_dir=DIR    also copy report.md and tables/ there (docs/results/NAME)
  OVERRIDE          a dotted key (dataset.root=DIR, dataset.limit_test=500) or seed=/device=/progress=:
                    added to every stage, so each command must know it

studies: {studies}"""

KEYS = ("tables", "scale", "output_dir", "dry_run", "report_dir")
SHARED_KEYS = ("seed", "device", "progress")  # undotted keys every command has


def parse(args: list[str]) -> tuple[str, dict]:
    """(study name, settings) from the command line; bad input is a one-line UserError."""
    from robustbench_cli.checks import flag
    from robustbench_cli.errors import UserError

    name, settings = args[0], {"tables": None, "scale": "small", "output_dir": "outputs",
                                "dry_run": False, "overrides": [], "report_dir": None}
    for arg in args[1:]:
        key, equals, value = arg.partition("=")
        if equals and ("." in key or key in SHARED_KEYS):
            settings["overrides"].append(arg)
            continue
        if not equals or key not in KEYS:
            raise UserError(f"unknown argument {arg!r} (known: {', '.join(f'{k}=...' for k in KEYS)}, "
                            "or a dotted override for every stage like dataset.root=DIR)")
        if key == "tables":
            settings[key] = [t.strip() for t in value.strip("[]").split(",") if t.strip()]
            if not settings[key]:
                raise UserError("tables=[] names no table")
        elif key == "dry_run":
            settings[key] = flag("dry_run", value)
        else:
            settings[key] = value
    return name, settings


def main() -> int:
    from robustbench_cli.studies.spec import available

    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(USAGE.format(studies=", ".join(available()) or "none"),
              file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    from pathlib import Path

    from robustbench_cli.errors import UserError
    from robustbench_cli.studies.run import run_study
    from robustbench_cli.studies.spec import load_study
    from robustbench_cli.studies.stages import StageFailed

    try:
        name, settings = parse(args)
        study = load_study(name, settings["scale"], settings["overrides"])
        run_study(study, settings["tables"], Path(settings["output_dir"]), settings["dry_run"],
                  settings["report_dir"] and Path(settings["report_dir"]))
    except (UserError, OSError, ValueError) as error:  # OSError: an unwritable output_dir
        message = (str(error).strip().splitlines() or [type(error).__name__])[0]
        print(f"robust study: error: {message}", file=sys.stderr)
        return 1 if isinstance(error, StageFailed) else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
