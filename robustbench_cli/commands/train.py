"""`robust train`: fit a classifier with Lightning, then test it; write metrics.json."""

import sys


def train(cfg) -> dict:
    import json
    import time
    import warnings
    from pathlib import Path

    import pytorch_lightning as pl
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf
    from pytorch_lightning.callbacks import ModelCheckpoint, RichProgressBar
    from pytorch_lightning.loggers import CSVLogger

    from robustbench_cli.checkpoints import file_sha256
    from robustbench_cli.config import check_train_config, recorded_dataset_config
    from robustbench_cli.data import RobustDataModule
    from robustbench_cli.lit.classifier import ClassifierModule
    from robustbench_cli.models import build_model
    from robustbench_cli.provenance import git_revision
    from robustbench_cli.reporting import atomic_write_text

    check_train_config(cfg)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")  # Lightning's own, not actionable
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    data = RobustDataModule(cfg.dataset, data_dir=cfg.paths.data_dir, seed=cfg.seed)
    data.prepare_data()  # missing data fails here, before the Trainer starts (DDP ranks come later)
    model = build_model(cfg.model, data.info)
    meta = {
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "dataset": recorded_dataset_config(cfg.dataset),
        "info": data.info.to_dict(),
        "defense": OmegaConf.to_container(cfg.defense, resolve=True),
        "seed": cfg.seed,
    }
    module = ClassifierModule(model, OmegaConf.to_container(cfg.optim), meta, cfg.trainer.max_epochs)
    has_val = cfg.dataset.val_fraction > 0
    checkpoints = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best",
                                  monitor="val_acc" if has_val else None, mode="max",
                                  save_top_k=1, save_last=True, enable_version_counter=False)
    trainer = pl.Trainer(**OmegaConf.to_container(cfg.trainer, resolve=True),
                         default_root_dir=run_dir, callbacks=[checkpoints, RichProgressBar()],
                         logger=CSVLogger(run_dir, name="logs", version=""))
    start = time.perf_counter()
    trainer.fit(module, datamodule=data, ckpt_path=cfg.ckpt_path)
    seconds = time.perf_counter() - start
    best = Path(checkpoints.best_model_path or checkpoints.last_model_path)
    tested = trainer.test(module, datamodule=data, ckpt_path=str(best), verbose=False)[0]
    if not trainer.is_global_zero:
        return {}
    metrics = {
        "model": cfg.model.name,
        "dataset": cfg.dataset.name,
        "defense": cfg.defense.name,
        "test_accuracy": tested["test_acc"],
        "test_top5": tested.get("test_top5"),
        "n_test": len(data.test_dataset()),
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "seconds": round(seconds, 3),
        "seed": cfg.seed,
        "checkpoint": str(best.relative_to(run_dir)),
        "last_checkpoint": "checkpoints/last.ckpt",
        "checkpoint_sha256": file_sha256(best),
        "git_revision": git_revision(),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    print(f"clean test accuracy {100 * metrics['test_accuracy']:.2f}% on {metrics['n_test']} images; "
          f"checkpoint {best}")
    return metrics


def main() -> int:
    from robustbench_cli.commands.hydra_app import run

    return run("train", "train", train)


if __name__ == "__main__":  # Lightning's DDP relaunches this file for ranks > 0
    sys.exit(main())
