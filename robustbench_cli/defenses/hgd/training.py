"""`robust train defense=hgd`: fit a denoiser in front of a frozen classifier, test it, write
metrics.json. The run folder has the layout of a classifier run (checkpoints/best.ckpt,
last.ckpt, logs/) plus the generated training pairs."""

import json
import warnings
from pathlib import Path

from omegaconf import OmegaConf

from robustbench_cli.errors import UserError


def _source_model(settings, target):
    """What the training pairs are crafted against: the target, or the source ensemble."""
    if settings.source_ckpts is None:
        return target, None
    from robustbench_cli.attacks.transfer import LogitEnsemble
    from robustbench_cli.defenses.hgd.checkpoint import read_classifier

    members = [read_classifier(path, "defense.source_ckpts")[0] for path in settings.source_ckpts]
    return LogitEnsemble(members).eval(), [str(path.resolve()) for path in settings.source_ckpts]


def _resume_point(cfg, run_dir):
    """(denoiser checkpoint to continue from or None, folder to write into)."""
    from robustbench_cli.checkpoints import read_checkpoint, resume_point
    from robustbench_cli.defenses.hgd.checkpoint import is_denoiser

    resume_from, run_dir = resume_point(cfg, run_dir)
    if resume_from is not None and not is_denoiser(read_checkpoint(resume_from)):
        raise UserError(f"{resume_from} is not a denoiser checkpoint: with defense=hgd, "
                        "ckpt_path continues an interrupted denoiser run; the classifier goes in "
                        "defense.target_ckpt")
    return resume_from, run_dir


def train_denoiser(cfg, run_dir: Path) -> dict:
    from robustbench_cli.checkpoints import check_fits, file_sha256
    from robustbench_cli.config import recorded_dataset_config
    from robustbench_cli.data import RobustDataModule
    from robustbench_cli.defenses.hgd.checkpoint import KIND, read_classifier
    from robustbench_cli.defenses.hgd.data import DenoiserData
    from robustbench_cli.defenses.hgd.guides import GuideLoss, guide_config
    from robustbench_cli.defenses.hgd.networks import build_denoiser, denoiser_config
    from robustbench_cli.defenses.hgd.pairs import PairMaker
    from robustbench_cli.defenses.hgd.settings import train_settings
    from robustbench_cli.lit.denoiser import DenoiserModule
    from robustbench_cli.lit.fit import fit, trainer_settings
    from robustbench_cli.provenance import git_revision
    from robustbench_cli.reporting import atomic_write_text
    from robustbench_cli.trackers.loggers import training_logger

    # Lightning warns about modules in eval mode at the start of fit: the frozen target, by design.
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
    settings = train_settings(cfg)
    resume_from, run_dir = _resume_point(cfg, run_dir)
    data = RobustDataModule(cfg.dataset, data_dir=cfg.paths.data_dir, seed=cfg.seed)
    data.prepare_data()
    info = data.info.to_dict()
    target, target_meta = read_classifier(settings.target_ckpt, "defense.target_ckpt")
    check_fits(target_meta["info"], info, f"defense.target_ckpt {settings.target_ckpt}")
    source, source_paths = _source_model(settings, target)
    guide = guide_config(settings.guide, settings.guide_layer, target)
    network = denoiser_config(settings.denoiser, settings.widths, *data.info.input_shape)
    maker = PairMaker(source, settings.attacks, settings.eps_range, settings.eps_levels)
    maker.check()
    target_record = {"checkpoint": str(settings.target_ckpt.resolve()),
                     "sha256": file_sha256(settings.target_ckpt)}
    pairs_record = {"attacks": settings.attacks, "eps_range": list(settings.eps_range),
                    "eps_levels": settings.eps_levels, "source": source_paths or "target",
                    "source_sha256": [file_sha256(p) for p in settings.source_ckpts or []]
                    or target_record["sha256"]}
    dataset_record = recorded_dataset_config(cfg.dataset)
    pair_data = DenoiserData(
        data, maker, settings.online,
        {**pairs_record, "seed": cfg.seed,
         "dataset": {k: v for k, v in dataset_record.items()
                     if k not in ("batch_size", "num_workers", "download")}},
        run_dir, cfg.paths.output_dir, cfg.seed)
    meta = {"kind": KIND, "denoiser": network, "guide": guide, "info": info,
            "dataset": dataset_record, "target": target_record, "pairs": pairs_record,
            "defense": OmegaConf.to_container(cfg.defense, resolve=True), "seed": cfg.seed}
    has_val = cfg.dataset.val_fraction > 0
    module = DenoiserModule(build_denoiser(network), target, GuideLoss(guide),
                            OmegaConf.to_container(cfg.optim, resolve=True), meta,
                            pairs=maker if settings.online else None,
                            seed=cfg.seed, monitor="val_loss" if has_val else "train_loss_epoch")

    fitted = fit(module, pair_data, run_dir, trainer_cfg=trainer_settings(cfg),
                 epochs=cfg.trainer.max_epochs, monitor="val_loss" if has_val else None, mode="min",
                 resume_from=resume_from, logger=training_logger(cfg, run_dir))
    trainer, tested, best = fitted.trainer, fitted.tested, fitted.best
    metrics = {
        "defense": "hgd", "denoiser": network["name"], "widths": network["widths"],
        "guide": guide["name"], "guide_layer": guide["layer"], "dataset": cfg.dataset.name,
        "target_checkpoint": target_record["checkpoint"], "target_sha256": target_record["sha256"],
        "test_loss": tested["test_loss"], "test_denoise_l1": tested["test_denoise_l1"],
        "test_accuracy": tested["test_acc"], "test_undefended_accuracy": tested["test_undefended_acc"],
        "n_test_pairs": len(trainer.test_dataloaders.dataset),
        "epochs": trainer.current_epoch, "global_step": trainer.global_step,
        "seconds": round(fitted.seconds, 3), "seed": cfg.seed,
        "checkpoint": str(best.resolve().relative_to(Path(run_dir).resolve())),
        "last_checkpoint": "checkpoints/last.ckpt",
        "training_data": pair_data.training_data(),
    }
    if not trainer.is_global_zero:
        return metrics
    metrics["checkpoint_sha256"] = file_sha256(best)
    metrics["git_revision"] = git_revision()
    metrics["config"] = OmegaConf.to_container(cfg, resolve=True)
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    print(f"target accuracy on the noisy test pairs: {100 * metrics['test_accuracy']:.2f}% denoised, "
          f"{100 * metrics['test_undefended_accuracy']:.2f}% undefended; denoising L1 "
          f"{metrics['test_denoise_l1']:.4f}; checkpoint {run_dir / metrics['checkpoint']}")
    return metrics
