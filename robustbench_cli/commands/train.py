"""`robust train`: fit a classifier (under its defense) with Lightning, test it, write metrics.json."""

import sys
from pathlib import Path

from omegaconf import OmegaConf


def fit_stage(cfg, data, model, objective, model_cfg: dict, stage_dir, epochs: int,
              callbacks=(), defense: dict | None = None, resume_from=None, run_dir=None) -> dict:
    """Fit `model` under `objective` into stage_dir (continuing `resume_from`) through the one
    fit helper, test the best checkpoint; returns its metrics (every rank gets them, rank 0
    alone writes files)."""
    from robustbench_cli.checkpoints import file_sha256
    from robustbench_cli.config import recorded_dataset_config
    from robustbench_cli.lit.classifier import ClassifierModule
    from robustbench_cli.lit.fit import fit, trainer_settings
    from robustbench_cli.trackers.loggers import training_logger

    stage_dir = Path(stage_dir)
    meta = {
        "model": model_cfg,
        "dataset": recorded_dataset_config(cfg.dataset),
        "info": data.info.to_dict(),
        "defense": defense or OmegaConf.to_container(cfg.defense, resolve=True),
        "seed": cfg.seed,
    }
    module = ClassifierModule(model, OmegaConf.to_container(cfg.optim), meta, epochs, objective)
    trainer_cfg = trainer_settings(cfg)
    has_val = cfg.dataset.val_fraction > 0
    if not has_val:
        trainer_cfg["limit_val_batches"] = 0
    fitted = fit(module, data, stage_dir, trainer_cfg=trainer_cfg, epochs=epochs,
                 monitor="val_acc" if has_val else None, mode="max", callbacks=callbacks,
                 resume_from=resume_from, run_dir=run_dir, logger=training_logger(cfg, stage_dir))
    trainer = fitted.trainer
    return {
        "model": model_cfg["name"],
        "dataset": cfg.dataset.name,
        "defense": meta["defense"]["name"],
        "test_accuracy": fitted.tested["test_acc"],
        "test_top5": fitted.tested.get("test_top5"),
        "n_test": len(data.test_dataset()),
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "seconds": round(fitted.seconds, 3),
        "seed": cfg.seed,
        # resolved: Lightning resolves a checkpoint folder reached through a symlink
        "checkpoint": str(fitted.best.resolve().relative_to(stage_dir.resolve())),
        "last_checkpoint": "checkpoints/last.ckpt",
        "checkpoint_sha256": file_sha256(fitted.best) if trainer.is_global_zero else None,
        "is_global_zero": trainer.is_global_zero,
    }


def train(cfg, run_dir=None) -> dict:
    """`robust train` on a composed config; run_dir defaults to Hydra's run folder."""
    import json
    import warnings
    from functools import partial

    import pytorch_lightning as pl

    from robustbench_cli.config import check_train_config
    from robustbench_cli.data import RobustDataModule
    from robustbench_cli.defenses import plan_training
    from robustbench_cli.defenses.registry import defense
    from robustbench_cli.lit.fit import trainer_settings
    from robustbench_cli.provenance import git_revision
    from robustbench_cli.reporting import atomic_write_text

    check_train_config(cfg)
    trainer_settings(cfg)  # a bad progress value stops the run here, before any data loads
    for benign in (".*LeafSpec.*", ".*smaller than the logging interval.*"):  # Lightning's, not actionable
        warnings.filterwarnings("ignore", message=benign)
    if run_dir is None:
        from hydra.core.hydra_config import HydraConfig

        run_dir = HydraConfig.get().runtime.output_dir
    run_dir = Path(run_dir)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    chosen = defense(cfg.defense.name)
    if chosen.classifier_key and not cfg.defense.get(chosen.classifier_key):
        cfg.defense[chosen.classifier_key] = str(input_classifier(cfg, run_dir, chosen.classifier_key))
    if chosen.wraps:  # not a classifier recipe: a model before a trained one
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


CLASSIFIER_STAGE = "classifier"  # the run's subfolder where a needed classifier is trained first


def input_classifier(cfg, run_dir, key: str) -> Path:
    """The classifier checkpoint a defense starts from when defense.KEY is empty: the one the
    continued checkpoint records (a resumed run keeps its classifier), the one this run trained
    before, else the newest undefended classifier of this model and dataset among the
    `robust train` runs under paths.output_dir, else one trained now into RUN/classifier/
    (with its own metrics.json, so later runs find it like any `robust train` run)."""
    import json

    from robustbench_cli.checkpoints import newest_train_checkpoint, read_checkpoint
    from robustbench_cli.errors import UserError

    last = Path(run_dir) / "checkpoints" / "last.ckpt"
    continued = cfg.ckpt_path or (last if cfg.get("resume") and last.is_file() else None)
    recorded = continued and read_checkpoint(continued)["robust"].get("defense", {}).get(key)
    if recorded:
        print(f"defense.{key}: the classifier {continued} was trained with: {recorded}")
        return Path(recorded)
    stage_dir = Path(run_dir) / CLASSIFIER_STAGE
    if (stage_dir / "metrics.json").is_file():
        path = stage_dir / json.loads((stage_dir / "metrics.json").read_text())["checkpoint"]
        print(f"defense.{key}: this run's classifier {path}")
        return path
    try:
        path = newest_train_checkpoint(cfg.paths.output_dir, cfg.model.name, cfg.dataset.name, "none")
        print(f"defense.{key}: the newest model={cfg.model.name} dataset={cfg.dataset.name} "
              f"classifier (defense=none) under {cfg.paths.output_dir}: {path}")
        return path
    except UserError:
        pass
    print(f"defense.{key}: no model={cfg.model.name} dataset={cfg.dataset.name} classifier under "
          f"{cfg.paths.output_dir}: training one first into {stage_dir}")
    return _train_classifier(cfg, stage_dir)


def _train_classifier(cfg, stage_dir: Path) -> Path:
    """An undefended classifier of cfg.model on cfg.dataset, fitted into stage_dir."""
    import json

    from robustbench_cli.data import RobustDataModule
    from robustbench_cli.lit.classifier import plain_objective
    from robustbench_cli.models import build_model
    from robustbench_cli.provenance import git_revision
    from robustbench_cli.reporting import atomic_write_text

    data = RobustDataModule(cfg.dataset, data_dir=cfg.paths.data_dir, seed=cfg.seed)
    data.prepare_data()
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    metrics = fit_stage(cfg, data, build_model(model_cfg, data.info), plain_objective, model_cfg,
                        stage_dir, cfg.trainer.max_epochs, defense={"name": "none"})
    if metrics.pop("is_global_zero"):
        metrics["git_revision"] = git_revision()
        atomic_write_text(stage_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return stage_dir / metrics["checkpoint"]


def _resume_point(cfg, run_dir, model: str, info: dict):
    """(classifier checkpoint to continue from or None, folder to write into)."""
    from robustbench_cli.checkpoints import check_resumable, resume_point

    resume_from, run_dir = resume_point(cfg, run_dir)
    return (None if resume_from is None else check_resumable(resume_from, model, info)), run_dir


def main() -> int:
    from robustbench_cli.commands.hydra_app import run

    return run("train", "train", train)


if __name__ == "__main__":  # Lightning's DDP relaunches this file for ranks > 0
    sys.exit(main())
