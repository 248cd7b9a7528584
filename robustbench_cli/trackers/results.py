"""Sends the result rows and files of one `robust eval` / `robust detect` run to the chosen
tracker (logger=tensorboard or mlflow; csv: the run folder's tables are the record).

Trackers plot a metric over an integer step, not over a float eps: step i is the i-th eps
of the run (all eps values of all attacks, sorted), the `eps` series holds its value, so
every attack's curve shares one x axis.
"""

from pathlib import Path

from robustbench_cli.reporting.rows import is_check, series_name
from robustbench_cli.trackers.loggers import build_logger, check_logger

# Per attack over eps (those a row has): eval's accuracies, detect's rates and AUC.
SERIES = ("accuracy", "top5", "accuracy_without_detector", "detection_rate", "detection_rate_attacked",
          "roc_auc")
# Once per run: the same in every row.
RUN_METRICS = ("clean_accuracy", "clean_top5", "false_positive_rate")
# The run's identity, as the tracker's params (hyperparameters).
PARAMS = ("model", "dataset", "defense", "detector", "checkpoint", "checkpoint_sha256", "seed",
          "protocol", "n")
# Files of the run folder sent along: tables, run record, plots.
FILE_SUFFIXES = (".json", ".csv", ".md", ".png")


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def metric_steps(rows) -> list[tuple[int, dict]]:
    """(step, metrics) for each eps of the run: `eps`, and `<measure>/<attack>` for each row at
    that eps; the sanity-check rows (unbounded budget) as `sanity/<attack>` at step 0."""
    curve = [row for row in rows if not is_check(row)]
    eps_values = sorted({float(row["eps"]) for row in curve})
    steps = [{"eps": eps} for eps in eps_values]
    for row in curve:
        at = steps[eps_values.index(float(row["eps"]))]
        at.update({f"{key}/{series_name(row)}": row[key] for key in SERIES if is_number(row.get(key))})
    if rows:
        steps[0].update({key: rows[0][key] for key in RUN_METRICS if is_number(rows[0].get(key))})
    steps[0].update({f"sanity/{series_name(row)}": row["accuracy"] for row in rows if is_check(row)})
    return list(enumerate(steps))


def run_params(rows) -> dict:
    """The run's identity (from its first row), its attacks and its eps list."""
    first = rows[0]
    params = {key: first[key] for key in PARAMS if first.get(key) is not None}
    curve = [row for row in rows if not is_check(row)]
    params["attacks"] = ", ".join(dict.fromkeys(series_name(row) for row in curve))
    params["eps"] = ", ".join(str(eps) for eps in sorted({float(row["eps"]) for row in curve}))
    return params


def result_files(run_dir) -> list[Path]:
    return sorted(p for p in Path(run_dir).iterdir() if p.is_file() and p.suffix in FILE_SUFFIXES)


def track_results(cfg, run_dir, rows, command: str) -> None:
    """Log `rows` and the result files of run_dir to cfg.logger's tracker (nothing for csv)."""
    if check_logger(cfg.logger) == "csv" or not rows:
        return
    run_dir = Path(run_dir)
    if cfg.logger.name == "tensorboard":  # a rerun (resume=true) rewrites the whole table: drop the old one
        for stale in (run_dir / "tensorboard").glob("events.out.tfevents.*"):
            stale.unlink()
    logger = build_logger(cfg.logger, run_dir, command=command, output_dir=cfg.paths.output_dir)
    logger.log_hyperparams(run_params(rows))
    for step, metrics in metric_steps(rows):
        logger.log_metrics(metrics, step=step)
    files = result_files(run_dir)
    if cfg.logger.name == "mlflow":
        import mlflow

        for path in files:
            logger.experiment.log_artifact(logger.run_id, str(path))
        experiment = logger.experiment.get_experiment(logger.experiment_id).name
        place = f"mlflow run {logger.run_id} (experiment {experiment}) at {mlflow.get_tracking_uri()}"
    else:
        _tensorboard_files(logger.experiment, files)
        place = f"tensorboard {logger.log_dir}"
    logger.finalize("success")
    print(f"tracked in {place}")


def _tensorboard_files(writer, files) -> None:
    """Tables as text (markdown renders, the others as code), plots as images."""
    import numpy as np
    from PIL import Image

    for path in files:
        if path.suffix == ".png":
            writer.add_image(path.name, np.asarray(Image.open(path).convert("RGB")), dataformats="HWC")
        else:
            text = path.read_text()
            writer.add_text(path.name, text if path.suffix == ".md" else f"```\n{text}\n```")
