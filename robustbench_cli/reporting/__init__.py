"""Results on the terminal and on disk: rich tables, json/csv/md files, plots, sweep summaries.

Never imports torch or Lightning: `robust aggregate` uses it and must start fast.
"""

from robustbench_cli.reporting.atomic import atomic_write_text
from robustbench_cli.reporting.console import print_results, results_table
from robustbench_cli.reporting.notes import table_notes
from robustbench_cli.reporting.plot import plot_accuracy_vs_eps
from robustbench_cli.reporting.run_files import write_job_failure, write_results
from robustbench_cli.reporting.sweep import aggregate_sweep

__all__ = [
    "aggregate_sweep",
    "atomic_write_text",
    "plot_accuracy_vs_eps",
    "print_results",
    "results_table",
    "table_notes",
    "write_job_failure",
    "write_results",
]
