"""The `dataset` config node, checked and typed once so loaders can trust every value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from robustbench_cli.checks import (
    Refused,
    flag,
    in_interval,
    non_negative_int,
    number,
    optional,
    plain,
    positive_int,
)
from robustbench_cli.errors import UserError

KNOWN_DATASETS = ("mnist", "fashion_mnist", "cifar10", "imagenet_subset", "image_folder")
# Datasets torchvision can download into data_dir/<name> when no root is given.
DOWNLOADABLE = ("mnist", "fashion_mnist", "cifar10")
# Image geometry used when the config leaves these keys out (the shipped yaml sets them).
GEOMETRY_DEFAULTS = {
    "imagenet_subset": {"resize": 342, "image_size": 299},
    "image_folder": {"image_size": 32, "channels": 3},
}


@dataclass(frozen=True)
class DatasetSettings:
    name: str
    root: Path  # absolute; data_dir/<name> when the config leaves it null
    root_given: bool
    download: bool
    limit_train: int | None
    limit_test: int | None
    train_classes: tuple[int, ...] | None  # keep only these labels (the model keeps every output)
    test_classes: tuple[int, ...] | None
    val_fraction: float
    batch_size: int
    num_workers: int
    augment: bool
    image_size: int | None
    resize: int | None
    channels: int | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None


def parse_settings(cfg, data_dir: str) -> DatasetSettings:
    """Validate the `dataset` node (DictConfig or dict); raise UserError on the first bad value."""
    values = _plain(cfg)
    name = values.get("name")
    if name not in KNOWN_DATASETS:
        raise UserError(f"unknown dataset {name!r}; known datasets: {', '.join(KNOWN_DATASETS)}")
    for key, default in GEOMETRY_DEFAULTS.get(name, {}).items():
        if values.get(key) is None:
            values[key] = default
    root, root_given = _root(name, values.get("root"), data_dir)
    channels = _optional_positive_int(values, "channels")
    if channels not in (None, 1, 3):
        raise UserError(f"dataset.channels must be 1 or 3, got {channels}")
    image_size = _optional_positive_int(values, "image_size")
    resize = _optional_positive_int(values, "resize")
    if resize is not None and image_size is not None and resize < image_size:
        raise UserError(
            f"dataset.resize ({resize}) must be at least dataset.image_size ({image_size})"
        )
    return DatasetSettings(
        name=name,
        root=root,
        root_given=root_given,
        download=flag("dataset.download", values.get("download", False)),
        limit_train=_optional_positive_int(values, "limit_train"),
        limit_test=_optional_positive_int(values, "limit_test"),
        train_classes=_classes(values, "train_classes"),
        test_classes=_classes(values, "test_classes"),
        val_fraction=val_fraction(values.get("val_fraction", 0.0)),
        batch_size=positive_int("dataset.batch_size", values.get("batch_size", 128)),
        num_workers=non_negative_int("dataset.num_workers", values.get("num_workers", 0)),
        augment=flag("dataset.augment", values.get("augment", False)),
        image_size=image_size,
        resize=resize,
        channels=channels,
        mean=_per_channel(values, "mean", channels),
        std=_per_channel(values, "std", channels),
    )


def _plain(cfg) -> dict:
    values = plain(cfg)
    if isinstance(values, Mapping):
        return dict(values)
    raise UserError(f"the dataset config must be a mapping, got {type(cfg).__name__}")


def val_fraction(value) -> float:
    """The share of the training split held out for validation, in [0, 1)."""
    return in_interval("dataset.val_fraction", value, 0, 1, high_closed=False,
                       wording="a number in [0, 1)")


def _root(name: str, root, data_dir: str) -> tuple[Path, bool]:
    if root is None:
        if name not in DOWNLOADABLE:
            raise UserError(
                f"dataset.root is required for {name}: the folder holding train/ and test/"
            )
        return (Path(data_dir).expanduser() / name).absolute(), False
    if not isinstance(root, str) or not root:
        raise UserError(f"dataset.root must be a folder path, got {root!r}")
    return Path(root).expanduser().absolute(), True


def _classes(values: dict, key: str) -> tuple[int, ...] | None:
    """A list of class indices (null: every class), e.g. Liao et al.'s unseen-class split:
    train_classes=[0,1,2,3,4,5,6] test_classes=[7,8,9]."""
    chosen = values.get(key)
    if chosen is None:
        return None
    if not isinstance(chosen, (list, tuple)) or not chosen:
        raise UserError(f"dataset.{key} must be a non-empty list of class indices like [0,1,2], "
                        f"got {chosen!r}")
    return tuple(sorted({non_negative_int(f"dataset.{key}", c) for c in chosen}))


def _optional_positive_int(values: dict, key: str) -> int | None:
    return optional(positive_int)(f"dataset.{key}", values.get(key))


def _per_channel(values: dict, key: str, channels: int | None) -> tuple[float, ...] | None:
    """A scalar or one number per channel; a scalar is repeated over the channels."""
    value = values.get(key)
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    count = channels or 3
    if len(items) == 1:
        items = items * count
    expected = f"a number or {count} numbers (std > 0)"
    numbers = tuple(number(f"dataset.{key}", item) for item in items)
    if len(numbers) != count or (key == "std" and min(numbers) <= 0):
        raise Refused(f"dataset.{key}", expected, repr(value))
    return numbers
