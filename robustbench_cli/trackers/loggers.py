"""The Lightning logger of the `logger` config group (csv, tensorboard, mlflow), for a fit
and for the results of eval/detect.

The tracker packages are optional and imported only here, when chosen: `import
robustbench_cli` and `robust --help` stay fast.
"""

import importlib.util
from pathlib import Path

from robustbench_cli.errors import UserError

INSTALL = "pip install 'robustbench_cli[trackers]'"
# logger name -> the packages that can serve it (Lightning's TensorBoardLogger takes either)
PACKAGES = {"csv": (), "tensorboard": ("tensorboard", "tensorboardX"), "mlflow": ("mlflow",)}
LOCAL_STORE = "mlflow.db"  # the default local MLflow store, in paths.output_dir
LOCAL_ARTIFACTS = "mlartifacts"


def check_logger(logger_cfg) -> str:
    """The chosen tracker's name, once its package is importable; a one-line error if not, so a
    long run never fails at its end."""
    name = logger_cfg.name
    if name not in PACKAGES:
        raise UserError(f"unknown logger '{name}' (available: {', '.join(PACKAGES)})")
    needed = PACKAGES[name]
    if needed and not any(importlib.util.find_spec(package) for package in needed):
        raise UserError(f"logger={name} needs the {needed[0]} package: {INSTALL}")
    return name


def run_name(run_dir, output_dir) -> str:
    """The run folder under paths.output_dir (e.g. eval/2026-01-31_12-00-00-000000), else its path."""
    run_dir, output_dir = Path(run_dir).resolve(), Path(output_dir).resolve()
    return str(run_dir.relative_to(output_dir) if run_dir.is_relative_to(output_dir) else run_dir)


def mlflow_store(logger_cfg, output_dir) -> tuple[str, str | None]:
    """(tracking URI, artifact location for a new experiment): logger.tracking_uri (the store
    decides where artifacts go), else the local sqlite store in output_dir with its artifacts
    beside it. (MLflow 3 refuses a plain ./mlruns folder store unless MLFLOW_ALLOW_FILE_STORE
    is true: sqlite is its local store now.)"""
    uri = logger_cfg.get("tracking_uri")
    if uri:
        return str(uri), None
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{output_dir / LOCAL_STORE}", (output_dir / LOCAL_ARTIFACTS).as_uri()


def build_logger(logger_cfg, save_dir, *, command: str, output_dir):
    """The Lightning logger of `logger_cfg` for a run whose files are in save_dir: csv ->
    save_dir/logs/, tensorboard -> save_dir/tensorboard/, mlflow -> a run in the experiment
    named `command` (unless logger.experiment_name) of the store mlflow_store() picks."""
    name = check_logger(logger_cfg)
    save_dir = Path(save_dir)
    if name == "csv":
        from pytorch_lightning.loggers import CSVLogger

        return CSVLogger(save_dir, name="logs", version="")
    if name == "tensorboard":
        from pytorch_lightning.loggers import TensorBoardLogger

        # version "": one folder per run, a resumed fit continues its curves there
        return TensorBoardLogger(save_dir, name="tensorboard", version="", default_hp_metric=False)
    from pytorch_lightning.loggers import MLFlowLogger

    uri, artifacts = mlflow_store(logger_cfg, output_dir)
    return MLFlowLogger(experiment_name=logger_cfg.get("experiment_name") or command,
                        run_name=logger_cfg.get("run_name") or run_name(save_dir, output_dir),
                        tracking_uri=uri, artifact_location=artifacts,
                        tags={"robust.command": command, "robust.run_dir": str(save_dir.resolve())},
                        log_model=logger_cfg.get("log_model", False))


def training_logger(cfg, stage_dir):
    """The logger a `robust train` fit into stage_dir writes to; a tracker also gets the
    config as its hyperparameters (csv does not: its logs stay as they always were)."""
    from omegaconf import OmegaConf

    logger = build_logger(cfg.logger, stage_dir, command="train", output_dir=cfg.paths.output_dir)
    if cfg.logger.name != "csv":
        chosen = OmegaConf.masked_copy(cfg, ["model", "dataset", "defense", "optim", "trainer", "seed"])
        logger.log_hyperparams(OmegaConf.to_container(chosen, resolve=True))
    return logger
