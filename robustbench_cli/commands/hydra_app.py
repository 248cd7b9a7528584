"""Runs one subcommand's Hydra app and turns bad input into a one-line error.

Hydra normally prints exceptions with a traceback; with HYDRA_FULL_ERROR set it re-raises
them, so we set it for our own process and print a single line instead. Users who set
HYDRA_FULL_ERROR=1 themselves still get the full traceback.

In a multirun, a job that fails is recorded (error.json in its folder) and the sweep goes
on; the exit code is non-zero when any job failed. Jobs may run in other processes or on
other hosts (hydra/launcher=joblib, submitit_*), so the failures are read back from their
folders at the end (sweep_summary.SweepFailures).
"""

import os
import re
import sys
import traceback
from collections.abc import Callable

CONFIG_PATH = "pkg://robustbench_cli.conf"

# Keys that are gone, with what replaced them ({value}: the value given for the old key). One
# line per rename; an old key on the command line or in a config stops the run with
# "KEY is gone: use ...".
def one_line(error: BaseException) -> str:
    """Hydra/OmegaConf messages span lines ('Available options:', 'full_key: ...'): fold them."""
    text = str(error).strip() or type(error).__name__
    options = re.search(r"Available options in '([^']+)':\s*\n((?:\s+\S+\n?)+)", text)
    if options:
        names = ", ".join(options.group(2).split())
        text = text[: options.start()].strip() + f" (available {options.group(1)}: {names})"
    lines = [ln.strip() for ln in text.splitlines()]
    kept = [ln for ln in lines if ln and not ln.startswith(("full_key:", "object_type=", "reference_type="))]
    return " ".join(kept)


def is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def run(command: str, config_name: str, task: Callable) -> int:
    """Run `task(cfg)` as a Hydra app named `command`; return the process exit code."""
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from robustbench_cli.commands import sweep_summary
    from robustbench_cli.errors import UserError

    user_wants_traceback = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"

    @hydra.main(version_base=None, config_path=CONFIG_PATH, config_name=config_name)
    def app(cfg) -> None:
        if not is_multirun():
            try:
                task(cfg)
            except UserError as error:
                if user_wants_traceback:
                    raise
                # Exit here: re-raising would make Hydra print the overrides on another line.
                print(f"robust {command}: error: {one_line(error)}", file=sys.stderr)
                raise SystemExit(2) from None
            return
        try:
            task(cfg)
        except Exception as error:  # one failing job must not lose the others' results
            from robustbench_cli.reporting import write_job_failure

            hc = HydraConfig.get()
            message = one_line(error) if isinstance(error, UserError) else (
                f"{type(error).__name__}: {one_line(error)}")
            write_job_failure(hc.runtime.output_dir, list(hc.overrides.task), message)
            if not isinstance(error, UserError):
                traceback.print_exc()
            print(f"robust {command}: job {hc.job.num} failed: {message}", file=sys.stderr)

    from robustbench_cli.commands.launchers import missing_launcher
    from robustbench_cli.config import renamed_override

    gone = renamed_override(sys.argv[1:]) or missing_launcher(sys.argv[1:])
    if gone:
        print(f"robust {command}: error: {gone}", file=sys.stderr)
        return 2
    try:
        app()
    except SystemExit:
        raise
    except Exception as error:
        if user_wants_traceback or not _is_bad_input(error):
            raise
        print(f"robust {command}: error: {one_line(error)}", file=sys.stderr)
        return 2
    failures = sweep_summary.failed_jobs
    if failures:
        print(f"robust {command}: {len(failures)} job(s) failed:", file=sys.stderr)
        for line in failures.values():
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


def _is_bad_input(error: Exception) -> bool:
    """Errors that come from what the user typed, not from a bug in the tool."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from robustbench_cli.errors import UserError

    # OSError: an output folder that cannot be created or written, before any work starts
    return isinstance(error, (UserError, HydraException, OmegaConfBaseException, OSError))
