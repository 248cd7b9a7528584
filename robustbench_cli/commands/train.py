"""`robust train`: fit a classifier (under its defense) with Lightning, test it, write metrics.json."""

import sys


def fit_stage(cfg, data, model, objective, model_cfg: dict, stage_dir, epochs: int,
              callbacks=(), defense: dict | None = None, resume_from=None) -> dict:
    """Fit `model` under `objective` into stage_dir/checkpoints (continuing `resume_from`),
    test the best checkpoint; returns its metrics (every rank gets them, rank 0 alone writes
    files). An interrupted fit (Ctrl-C, SIGTERM) leaves a resumable checkpoints/last.ckpt."""
    import time
    from pathlib import Path

    import pytorch_lightning as pl
    from omegaconf import OmegaConf
    from pytorch_lightning.callbacks import ModelCheckpoint, RichProgressBar
    from pytorch_lightning.loggers import CSVLogger

    from robustbench_cli.checkpoints import file_sha256
    from robustbench_cli.config import recorded_dataset_config
    from robustbench_cli.errors import UserError
    from robustbench_cli.lit.classifier import ClassifierModule, SaveOnInterrupt

    stage_dir = Path(stage_dir)
    meta = {
        "model": model_cfg,
        "dataset": recorded_dataset_config(cfg.dataset),
        "info": data.info.to_dict(),
        "defense": defense or OmegaConf.to_container(cfg.defense, resolve=True),
        "seed": cfg.seed,
    }
    module = ClassifierModule(model, OmegaConf.to_container(cfg.optim), meta, epochs, objective)
    has_val = cfg.dataset.val_fraction > 0
    checkpoints = ModelCheckpoint(dirpath=stage_dir / "checkpoints", filename="best",
                                  monitor="val_acc" if has_val else None, mode="max",
                                  save_top_k=1, save_last=True, enable_version_counter=False)
    trainer_args = {**OmegaConf.to_container(cfg.trainer, resolve=True), "max_epochs": epochs}
    if not has_val:
        trainer_args["limit_val_batches"] = 0
    trainer = pl.Trainer(**trainer_args, default_root_dir=stage_dir,
                         callbacks=[checkpoints, SaveOnInterrupt(stage_dir / "checkpoints" / "last.ckpt"),
                                    RichProgressBar(), *callbacks],
                         logger=CSVLogger(stage_dir, name="logs", version=""))
    start, started_at = time.perf_counter(), time.time()
    best = stage_dir / "checkpoints" / "best.ckpt"
    if epochs > 0:
        last = stage_dir / "checkpoints" / "last.ckpt"
        try:  # weights_only: never unpickle code from a checkpoint, ours or a resumed one
            trainer.fit(module, datamodule=data, ckpt_path=resume_from, weights_only=True)
        except FloatingPointError as error:
            saved = last.is_file() and last.stat().st_mtime >= started_at  # by this run, not an earlier one
            kept = f"the last good checkpoint is {last}" if saved else "no checkpoint was saved"
            raise UserError(f"training stopped: {error}; {kept}") from None
        except SystemExit as stop:  # Lightning's way out after Ctrl-C or SIGTERM
            print(f"robust train: interrupted; continue with ckpt_path={last} (or resume=true)",
                  file=sys.stderr)
            raise SystemExit(stop.code or 1) from None
        best = Path(checkpoints.best_model_path or checkpoints.last_model_path)
        tested = trainer.test(module, datamodule=data, ckpt_path=str(best), verbose=False,
                              weights_only=True)[0]
    else:  # nothing to fit (pruning without fine-tuning): test and save the model as it is
        tested = trainer.test(module, datamodule=data, verbose=False)[0]
        for path in (best, best.with_name("last.ckpt")):
            trainer.save_checkpoint(path, weights_only=True)
    return {
        "model": model_cfg["name"],
        "dataset": cfg.dataset.name,
        "defense": meta["defense"]["name"],
        "test_accuracy": tested["test_acc"],
        "test_top5": tested.get("test_top5"),
        "n_test": len(data.test_dataset()),
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "seconds": round(time.perf_counter() - start, 3),
        "seed": cfg.seed,
        "checkpoint": str(best.relative_to(stage_dir)),
        "last_checkpoint": "checkpoints/last.ckpt",
        "checkpoint_sha256": file_sha256(best) if trainer.is_global_zero else None,
        "is_global_zero": trainer.is_global_zero,
    }


def train(cfg, run_dir=None) -> dict:
    """`robust train` on a composed config; run_dir defaults to Hydra's run folder."""
    import json
    import warnings
    from functools import partial
    from pathlib import Path

    import pytorch_lightning as pl
    from omegaconf import OmegaConf

    from robustbench_cli.config import check_train_config
    from robustbench_cli.data import RobustDataModule
    from robustbench_cli.defenses import plan_training
    from robustbench_cli.defenses.registry import defense
    from robustbench_cli.provenance import git_revision
    from robustbench_cli.reporting import atomic_write_text

    check_train_config(cfg)
    for benign in (".*LeafSpec.*", ".*smaller than the logging interval.*"):  # Lightning's, not actionable
        warnings.filterwarnings("ignore", message=benign)
    if run_dir is None:
        from hydra.core.hydra_config import HydraConfig

        run_dir = HydraConfig.get().runtime.output_dir
    run_dir = Path(run_dir)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    if defense(cfg.defense.name).wraps:  # not a classifier recipe: a model before a trained one
        from robustbench_cli.defenses.hgd.training import train_denoiser

        return train_denoiser(cfg, run_dir)
    data = RobustDataModule(cfg.dataset, data_dir=cfg.paths.data_dir, seed=cfg.seed)
    data.prepare_data()  # missing data fails here, before the Trainer starts (DDP ranks come later)
    stage = partial(fit_stage, cfg, data)
    if cfg.defense.name == "distillation":
        # A resumed student keeps the teacher it started with (its run's teacher/, checked
        # against defense.temperature), so the resume point comes before the plan.
        resume_from, run_dir = _resume_point(cfg, run_dir, cfg.model.name, data.info.to_dict())
        teacher_dir = Path(resume_from).parent.parent if resume_from else run_dir
        plan = plan_training(cfg, data, run_dir, stage, teacher_dir=teacher_dir)
    else:
        plan = plan_training(cfg, data, run_dir, stage)
        resume_from, run_dir = _resume_point(cfg, run_dir, plan.model_cfg["name"], data.info.to_dict())
    metrics = stage(plan.model, plan.objective, plan.model_cfg, run_dir, plan.max_epochs,
                    plan.callbacks, resume_from=resume_from)
    if not metrics.pop("is_global_zero"):
        return metrics
    metrics.update(plan.extra_metrics)
    metrics["git_revision"] = git_revision()
    metrics["config"] = OmegaConf.to_container(cfg, resolve=True)
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    print(f"clean test accuracy {100 * metrics['test_accuracy']:.2f}% on {metrics['n_test']} images; "
          f"checkpoint {run_dir / metrics['checkpoint']}")
    return metrics


def _resume_point(cfg, run_dir, model: str, info: dict):
    """(checkpoint to continue from or None, folder to write into): `ckpt_path` continues in
    this run's folder, `resume=true` in the newest interrupted run's own folder."""
    from robustbench_cli.checkpoints import check_resumable, newest_unfinished_run

    if cfg.ckpt_path:
        return check_resumable(cfg.ckpt_path, model, info), run_dir
    if cfg.resume:
        run = newest_unfinished_run(cfg.paths.output_dir, model, cfg.dataset.name, cfg.defense.name)
        print(f"resuming {run} from its last checkpoint")
        return check_resumable(run / "checkpoints" / "last.ckpt", model, info), run.resolve()
    return None, run_dir


def main() -> int:
    from robustbench_cli.commands.hydra_app import run

    return run("train", "train", train)


if __name__ == "__main__":  # Lightning's DDP relaunches this file for ranks > 0
    sys.exit(main())
