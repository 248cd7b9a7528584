"""What an evaluation runs on: the classifier of a checkpoint and the test data it fits.

Shared by every command that evaluates a trained classifier (eval, detect): the checkpoint
is `ckpt_path` or the newest matching `robust train` run; the data is the config's if the
user chose a dataset, else the checkpoint's own (with the user's dataset.* overrides).
`ckpt_path=[A,B,...]` evaluates the ensemble that averages their logits (Liao et al.'s
classifier ensembles); the data is the first member's, and every member must fit it.
"""

import hashlib
from dataclasses import dataclass, field
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
from robustbench_cli.checks import checkpoint_paths
from robustbench_cli.config import explicit_choices
from robustbench_cli.errors import UserError


@dataclass
class Target:
    model: object  # torch.nn.Module in eval mode, [0, 1] inputs -> logits
    test_set: object  # torch Dataset of (image, label)
    meta: dict  # the checkpoint's record of model, dataset, defense (an ensemble's: combined)
    checkpoints: list[Path]  # one, or an ensemble's members
    dataset_cfg: object  # the dataset config evaluated on
    seed: int
    members: list = field(default_factory=list)  # an ensemble's classifiers, in checkpoint order

    def identity(self) -> dict:
        """The columns every result row carries, so tables from different runs compare."""
        defense = dict(self.meta.get("defense", {"name": "none"}))
        shas = [file_sha256(path) for path in self.checkpoints]
        sha = shas[0] if len(shas) == 1 else hashlib.sha256(",".join(shas).encode()).hexdigest()
        return {"model": self.meta["model"]["name"], "dataset": self.dataset_cfg.name,
                "defense": defense.pop("name"), "defense_params": defense,
                "checkpoint": ",".join(str(path.resolve()) for path in self.checkpoints),
                "checkpoint_sha256": sha, "seed": self.seed}

    def trained_with(self) -> dict:
        return {k: self.meta[k] for k in ("model", "dataset", "defense", "seed") if k in self.meta}


def load_target(cfg, overrides: list[str], defense: str | None = None) -> Target:
    """The classifier to evaluate; `defense`, a training recipe (e.g. named by an
    experiment), narrows the choice to checkpoints trained with it."""
    from robustbench_cli.attacks.transfer import LogitEnsemble
    from robustbench_cli.data import RobustDataModule

    explicit = explicit_choices(overrides)
    if cfg.ckpt_path:
        ckpts = checkpoint_paths("ckpt_path", cfg.ckpt_path)
    else:
        ckpts = [newest_train_checkpoint(cfg.paths.output_dir, cfg.model.name, cfg.dataset.name, defense)]
        print(f"using the newest matching checkpoint: {ckpts[0]}")
    contents = [read_checkpoint(ckpt) for ckpt in ckpts]
    metas = [content[META_KEY] for content in contents]
    for ckpt, meta in zip(ckpts, metas):
        trained_defense = meta.get("defense", {}).get("name", "none")
        if defense and trained_defense != defense:
            raise UserError(f"checkpoint {ckpt} was trained with defense {trained_defense}, not "
                            f"{defense} (drop defense= or pass another ckpt_path)")
        trained = meta["model"]["name"]
        if "model" in explicit and explicit["model"] != trained:
            raise UserError(f"checkpoint {ckpt} holds model {trained}, not {explicit['model']} "
                            f"(drop model= or pass model={trained})")
    dataset_cfg = dataset_config(cfg, metas[0], explicit, overrides)
    data = RobustDataModule(dataset_cfg, data_dir=cfg.paths.data_dir, seed=cfg.seed)
    for ckpt, meta in zip(ckpts, metas):
        check_fits(meta["info"], data.info.to_dict(), f"checkpoint {ckpt}")
    test_set = data.test_dataset()
    if len(test_set) == 0:
        raise UserError(f"the {dataset_cfg.name} test split is empty")
    models = [build_classifier(meta, classifier_state(content), ckpt)
              for ckpt, meta, content in zip(ckpts, metas, contents)]
    if len(models) == 1:
        return Target(models[0], test_set, metas[0], ckpts, dataset_cfg, cfg.seed)
    return Target(LogitEnsemble(models).eval(), test_set, ensemble_meta(metas), ckpts,
                  dataset_cfg, cfg.seed, members=models)


def ensemble_meta(metas: list[dict]) -> dict:
    """An ensemble's record: the first member's data and classes, the members' models joined
    ("cnn+vgg11"), their defense if they share one (else joined) with each member's record."""
    defenses = [dict(meta.get("defense", {"name": "none"})) for meta in metas]
    names = [d["name"] for d in defenses]
    name = names[0] if len(set(names)) == 1 else "+".join(names)
    return {**metas[0], "model": {"name": "+".join(meta["model"]["name"] for meta in metas)},
            "defense": {"name": name, "members": defenses}}


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

