"""What an evaluation runs on: the classifier of a checkpoint and the test data it fits.

Shared by every command that evaluates a trained classifier (eval, detect): the checkpoint
is `ckpt_path` or the newest matching `robust train` run; the data is the config's if the
user chose a dataset, else the checkpoint's own (with the user's dataset.* overrides).
"""

from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from robustbench_cli.checkpoints import (
    META_KEY,
    build_classifier,
    check_fits,
    classifier_state,
    file_sha256,
    newest_train_checkpoint,
    read_checkpoint,
)
from robustbench_cli.config import explicit_choices
from robustbench_cli.errors import UserError


@dataclass
class Target:
    model: object  # torch.nn.Module in eval mode, [0, 1] inputs -> logits
    test_set: object  # torch Dataset of (image, label)
    meta: dict  # the checkpoint's record of model, dataset, defense
    checkpoint: Path
    dataset_cfg: object  # the dataset config evaluated on
    seed: int

    def identity(self) -> dict:
        """The columns every result row carries, so tables from different runs compare."""
        defense = dict(self.meta.get("defense", {"name": "none"}))
        return {"model": self.meta["model"]["name"], "dataset": self.dataset_cfg.name,
                "defense": defense.pop("name"), "defense_params": defense,
                "checkpoint": str(self.checkpoint.resolve()),
                "checkpoint_sha256": file_sha256(self.checkpoint), "seed": self.seed}

    def trained_with(self) -> dict:
        return {k: self.meta[k] for k in ("model", "dataset", "defense", "seed") if k in self.meta}


def load_target(cfg, overrides: list[str], defense: str | None = None) -> Target:
    """The classifier to evaluate; `defense`, a training recipe (e.g. named by an
    experiment), narrows the choice to checkpoints trained with it."""
    from robustbench_cli.data import RobustDataModule

    explicit = explicit_choices(overrides)
    if cfg.ckpt_path:
        ckpt = Path(cfg.ckpt_path)
    else:
        ckpt = newest_train_checkpoint(cfg.paths.output_dir, cfg.model.name, cfg.dataset.name, defense)
        print(f"using the newest matching checkpoint: {ckpt}")
    content = read_checkpoint(ckpt)
    meta = content[META_KEY]
    trained_defense = meta.get("defense", {}).get("name", "none")
    if defense and trained_defense != defense:
        raise UserError(f"checkpoint {ckpt} was trained with defense {trained_defense}, not {defense} "
                        f"(drop defense= or pass another ckpt_path)")
    trained = meta["model"]["name"]
    if "model" in explicit and explicit["model"] != trained:
        raise UserError(f"checkpoint {ckpt} holds model {trained}, not {explicit['model']} "
                        f"(drop model= or pass model={trained})")
    dataset_cfg = dataset_config(cfg, meta, explicit, overrides)
    data = RobustDataModule(dataset_cfg, data_dir=cfg.paths.data_dir, seed=cfg.seed)
    check_fits(meta["info"], data.info.to_dict(), f"checkpoint {ckpt}")
    test_set = data.test_dataset()
    if len(test_set) == 0:
        raise UserError(f"the {dataset_cfg.name} test split is empty")
    model = build_classifier(meta, classifier_state(content), ckpt)
    return Target(model, test_set, meta, ckpt, dataset_cfg, cfg.seed)


def dataset_config(cfg, meta: dict, explicit: dict, overrides: list[str]):
    """The config's dataset if the user chose one, else the checkpoint's (with the user's
    dataset.* overrides on top); a null root falls back to the one trained on."""
    if "dataset" in explicit:
        dataset = cfg.dataset.copy()
    else:
        dataset = OmegaConf.create(meta["dataset"])
        for override in overrides:
            key = override.split("=", 1)[0].lstrip("+~")
            if key.startswith("dataset."):
                OmegaConf.update(dataset, key[len("dataset."):], OmegaConf.select(cfg, key))
    if dataset.get("root") is None and dataset.name == meta["dataset"].get("name"):
        dataset.root = meta["dataset"].get("root")
    return dataset

