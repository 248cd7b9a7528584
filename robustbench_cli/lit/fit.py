"""The one Lightning fit that every trained thing goes through: a classifier, a distillation
teacher or student, a pruned model's fine-tuning, an HGD denoiser.

One folder layout (checkpoints/best.ckpt and last.ckpt, logs/metrics.csv), one rule for an
interrupted fit (Ctrl-C or SIGTERM writes a resumable last.ckpt; the message says how to
continue), one rule for a diverged loss (a one-line error naming the last good checkpoint,
only if this fit wrote it), and the best checkpoint tested at the end.
"""

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, ModelCheckpoint, RichProgressBar
from pytorch_lightning.loggers import CSVLogger

from robustbench_cli.errors import UserError


@dataclass
class Fitted:
    trainer: pl.Trainer
    best: Path  # the checkpoint tested (best by the monitored metric, else the last)
    tested: dict  # the test metrics of `best`
    seconds: float


class SaveOnInterrupt(Callback):
    """Writes last.ckpt when training is interrupted (Ctrl-C, SIGTERM, a crash), so it can be
    resumed; not for a diverged loss, whose weights are no good: the last.ckpt of the previous
    epoch is kept instead. (Lightning's OnExceptionCheckpoint deletes its file at teardown.)"""

    def __init__(self, path):
        self.path = str(path)

    def on_exception(self, trainer, pl_module, exception):
        if not isinstance(exception, FloatingPointError):
            trainer.save_checkpoint(self.path, weights_only=False)  # full state, to resume


def trainer_settings(cfg) -> dict:
    """cfg.trainer as Trainer keyword arguments, under the top-level `progress` switch:
    progress=false or trainer.enable_progress_bar=false fits without a progress bar. Its
    precision is one models/precision.py knows (16-mixed: not on the CPU)."""
    from omegaconf import OmegaConf

    from robustbench_cli.checks import flag
    from robustbench_cli.models.precision import check_precision

    settings = OmegaConf.to_container(cfg.trainer, resolve=True)
    check_precision(settings.get("precision", 32), str(settings.get("accelerator", "auto")))
    bar = settings.get("enable_progress_bar", True)
    settings["enable_progress_bar"] = (flag("progress", cfg.get("progress", True))
                                       and flag("trainer.enable_progress_bar", bar))
    return settings


def fit(module: pl.LightningModule, data: pl.LightningDataModule, stage_dir, *, trainer_cfg: dict,
        epochs: int, monitor: str | None, mode: str, callbacks=(), resume_from=None,
        run_dir=None, logger=None) -> Fitted:
    """Fit `module` on `data` for `epochs` into stage_dir (continuing `resume_from`), keeping
    the checkpoint best by `monitor` (`mode` min or max; None: the last), then test it.
    With epochs = 0 nothing is fitted: the module is tested and saved as it is. `run_dir`
    (default stage_dir) is the folder an interrupted run is resumed in. `logger`: a Lightning
    logger (default: a CSVLogger writing stage_dir/logs/metrics.csv)."""
    stage_dir = Path(stage_dir)
    run_dir = stage_dir if run_dir is None else Path(run_dir)
    checkpoints = ModelCheckpoint(dirpath=stage_dir / "checkpoints", filename="best", monitor=monitor,
                                  mode=mode, save_top_k=1, save_last=True, enable_version_counter=False)
    last = stage_dir / "checkpoints" / "last.ckpt"
    # Lightning refuses a progress-bar callback beside enable_progress_bar=False
    bar = [RichProgressBar()] if trainer_cfg.get("enable_progress_bar", True) else []
    trainer = pl.Trainer(**{**trainer_cfg, "max_epochs": epochs}, default_root_dir=stage_dir,
                         callbacks=[checkpoints, SaveOnInterrupt(last), *bar, *callbacks],
                         logger=logger or CSVLogger(stage_dir, name="logs", version=""))
    start, started_at = time.perf_counter(), time.time()
    best = stage_dir / "checkpoints" / "best.ckpt"
    if epochs == 0:  # e.g. pruning without fine-tuning: test and save the model as it is
        tested = trainer.test(module, datamodule=data, verbose=False)[0]
        for path in (best, last):
            trainer.save_checkpoint(path, weights_only=True)
        return Fitted(trainer, best, tested, time.perf_counter() - start)
    try:  # weights_only: never unpickle code from a checkpoint, ours or a resumed one
        trainer.fit(module, datamodule=data, ckpt_path=resume_from, weights_only=True)
    except FloatingPointError as error:
        saved = last.is_file() and last.stat().st_mtime >= started_at  # by this fit, not an earlier one
        kept = f"the last good checkpoint is {last}" if saved else "no checkpoint was saved"
        raise UserError(f"training stopped: {error}; {kept}") from None
    except SystemExit as stop:  # Lightning's way out after Ctrl-C or SIGTERM
        print(f"robust train: interrupted; continue with resume=true hydra.run.dir={run_dir} "
              f"(or ckpt_path={last})", file=sys.stderr)
        raise SystemExit(stop.code or 1) from None
    best = Path(checkpoints.best_model_path or checkpoints.last_model_path)
    tested = trainer.test(module, datamodule=data, ckpt_path=str(best), verbose=False,
                          weights_only=True)[0]
    return Fitted(trainer, best, tested, time.perf_counter() - start)
