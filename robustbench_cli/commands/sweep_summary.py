"""Hydra callbacks of a multirun: the sweep summary and the failed jobs.

Jobs may run in this process (the basic launcher), in worker processes (joblib) or on other
hosts (submitit), and finish in any order, so both callbacks read what the job folders hold
on disk. on_job_end runs where the job ran; on_multirun_end runs here, in the launching
process, once every job has finished."""

import json
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode

# job folder name -> "job N (overrides): error", filled at the end of a multirun for the
# exit code (Hydra hands the app no handle on its callbacks or on the jobs' returns)
failed_jobs: dict[str, str] = {}


class SweepSummary(Callback):
    """summary.csv/md at the sweep root (eval, detect), rebuilt from every job folder."""

    def on_job_end(self, config, job_return, **kwargs) -> None:
        # keeps the summary current during a long sweep; Hydra's basic sweeper also skips
        # on_multirun_end when a job raises
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            return
        from robustbench_cli.reporting import aggregate_sweep

        aggregate_sweep(HydraConfig.get().sweep.dir)

    def on_multirun_end(self, config, **kwargs) -> None:
        # Parallel jobs rebuild the summary concurrently, and the last to write may not have
        # seen the others' results: the final one is built here, after all of them.
        from robustbench_cli.reporting import aggregate_sweep

        aggregate_sweep(config.hydra.sweep.dir)
        print(f"sweep summary: {config.hydra.sweep.dir}/summary.md")


class SweepFailures(Callback):
    """Collects the jobs that failed in this multirun (their error.json, see hydra_app) into
    `failed_jobs`, wherever they ran."""

    def on_multirun_start(self, config, **kwargs) -> None:
        # what an earlier sweep into this folder left (mtimes, not clocks: jobs may run on other hosts)
        self.before = _error_files(config)
        failed_jobs.clear()

    def on_multirun_end(self, config, **kwargs) -> None:
        found = sorted(_error_files(config).items(), key=lambda item: _job_order(item[0].parent.name))
        for path, mtime in found:
            if self.before.get(path) == mtime:
                continue
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                record = {"error": f"unreadable {path}"}
            overrides = " ".join(record.get("overrides", []))
            failed_jobs[path.parent.name] = f"job {path.parent.name} ({overrides}): {record.get('error')}"


def _error_files(config) -> dict:
    from robustbench_cli.reporting.run_files import ERROR_JSON

    return {path: path.stat().st_mtime_ns for path in Path(config.hydra.sweep.dir).glob(f"*/{ERROR_JSON}")}


def _job_order(name: str):
    return (0, int(name), "") if name.isdigit() else (1, 0, name)
