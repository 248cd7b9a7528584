"""Hydra callback that keeps a multirun's summary current after every job.

Hydra's basic sweeper skips on_multirun_end when a job raises, so the summary is rebuilt
on each job's end instead (failed jobs included, from their error.json)."""

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode


class SweepSummary(Callback):
    def on_job_end(self, config, job_return, **kwargs) -> None:
        hc = HydraConfig.get()
        if hc.mode != RunMode.MULTIRUN:
            return
        from robustbench_cli.reporting import aggregate_sweep

        aggregate_sweep(hc.sweep.dir)

    def on_multirun_end(self, config, **kwargs) -> None:
        print(f"sweep summary: {config.hydra.sweep.dir}/summary.md")
