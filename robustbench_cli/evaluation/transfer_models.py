"""What a transfer matrix runs on: the source and target classifiers and the test data they fit.

The transfer counterpart of `target.py`: several checkpoints instead of one. Each distinct
checkpoint (same bytes, same checkpoint) is read and built once, so a checkpoint named as
both source and target is one model object and its diagonal cell is the white-box case.
The data is the config's if the user chose a dataset, else the checkpoints' own (they must
agree on it), with the user's dataset.* overrides: the rule of `load_target`.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from robustbench_cli.checkpoints import (
    META_KEY,
    build_classifier,
    check_fits,
    classifier_state,
    file_sha256,
    read_checkpoint,
)
from robustbench_cli.config import explicit_choices
from robustbench_cli.errors import UserError
from robustbench_cli.evaluation.target import dataset_config


@dataclass(eq=False)  # compared by identity: one object per distinct checkpoint
class Checkpoint:
    label: str  # short and distinct: what tables and plots call it
    path: Path
    sha256: str
    meta: dict  # the checkpoint's record of model, dataset, defense
    model: object  # torch.nn.Module in eval mode, [0, 1] inputs -> logits

    def identity(self) -> dict:
        return {"label": self.label, "checkpoint": str(self.path.resolve()), "sha256": self.sha256,
                "model": self.meta["model"]["name"],
                "defense": self.meta.get("defense", {}).get("name", "none")}


@dataclass
class TransferInputs:
    sources: list[Checkpoint]
    targets: list[Checkpoint]
    test_set: object  # torch Dataset of (image, label)
    dataset_cfg: object


def load_transfer_inputs(cfg, overrides: list[str], sources: list[Path],
                         targets: list[Path]) -> TransferInputs:
    """Read every checkpoint once, load the test data, check that each checkpoint fits it."""
    from robustbench_cli.data import RobustDataModule

    paths = list(dict.fromkeys(Path(p) for p in [*sources, *targets]))
    contents = {path: read_checkpoint(path) for path in paths}  # UserError: missing, not ours
    metas = {path: content[META_KEY] for path, content in contents.items()}
    for path, meta in metas.items():
        if "model" not in meta:
            raise UserError(f"{path} is not a classifier checkpoint (a denoiser's?)")
    dataset_cfg = _transfer_dataset(cfg, overrides, metas)
    data = RobustDataModule(dataset_cfg, data_dir=cfg.paths.data_dir, seed=cfg.seed)
    for path, meta in metas.items():
        check_fits(meta["info"], data.info.to_dict(), f"checkpoint {path}")
    test_set = data.test_dataset()
    if len(test_set) == 0:
        raise UserError(f"the {dataset_cfg.name} test split is empty")

    by_hash: dict[str, Checkpoint] = {}
    loaded: dict[Path, Checkpoint] = {}
    for path, content in contents.items():
        digest = file_sha256(path)
        if digest not in by_hash:
            model = build_classifier(metas[path], classifier_state(content), path)
            by_hash[digest] = Checkpoint("", path, digest, metas[path], model)
        loaded[path] = by_hash[digest]
    for checkpoint, label in zip(by_hash.values(), short_labels([c.path for c in by_hash.values()])):
        checkpoint.label = label
    return TransferInputs(distinct(loaded[Path(p)] for p in sources),
                          distinct(loaded[Path(p)] for p in targets), test_set, dataset_cfg)


def distinct(checkpoints) -> list[Checkpoint]:
    """Each checkpoint once, in order (one may be named twice, or as source and target)."""
    return list({id(c): c for c in checkpoints}.values())


def _transfer_dataset(cfg, overrides: list[str], metas: dict[Path, dict]):
    """The dataset config, by `load_target`'s rule; without dataset= the checkpoints must have
    been trained on one dataset, else which one is meant is a guess."""
    explicit = explicit_choices(overrides)
    first = next(iter(metas.values()))
    if "dataset" not in explicit:
        trained = {meta["dataset"].get("name") for meta in metas.values()}
        if len(trained) > 1:
            raise UserError(f"the checkpoints were trained on different datasets "
                            f"({', '.join(sorted(map(str, trained)))}): pass dataset=NAME")
    return dataset_config(cfg, first, explicit, overrides)


def short_labels(paths: list[Path]) -> list[str]:
    """A short, distinct name per checkpoint: its `robust train` run folder's name (RUN for
    RUN/checkpoints/best.ckpt; SWEEP/N for a multirun job; STAGE for a study's STAGE-HASH
    folder), else the file's stem; a name taken already gets -2, -3, ..."""
    labels: list[str] = []
    for path in paths:
        path = Path(path).resolve()
        label = path.stem
        if path.parent.name == "checkpoints":
            run = path.parent.parent
            label = f"{run.parent.name}/{run.name}" if run.name.isdigit() else run.name
            label = re.sub(r"-[0-9a-f]{12}$", "", label)  # a study stage: its name
        unique, number = label, 2
        while unique in labels:
            unique, number = f"{label}-{number}", number + 1
        labels.append(unique)
    return labels
