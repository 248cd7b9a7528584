"""The `dataset` config node, checked and typed once so loaders can trust every value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

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
        download=_bool(values, "download", default=False),
        limit_train=_optional_positive_int(values, "limit_train"),
        limit_test=_optional_positive_int(values, "limit_test"),
        val_fraction=_val_fraction(values.get("val_fraction", 0.0)),
        batch_size=_positive_int(values, "batch_size", default=128),
        num_workers=_non_negative_int(values, "num_workers", default=0),
        augment=_bool(values, "augment", default=False),
        image_size=image_size,
        resize=resize,
        channels=channels,
        mean=_per_channel(values, "mean", channels),
        std=_per_channel(values, "std", channels),
    )


def _plain(cfg) -> dict:
    if OmegaConf.is_config(cfg):
        return OmegaConf.to_container(cfg, resolve=True)
    if isinstance(cfg, Mapping):
        return dict(cfg)
    raise UserError(f"the dataset config must be a mapping, got {type(cfg).__name__}")


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


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _optional_positive_int(values: dict, key: str) -> int | None:
    value = values.get(key)
    if value is None:
        return None
    if not _is_int(value) or value <= 0:
        raise UserError(f"dataset.{key} must be a positive integer or null, got {value!r}")
    return value


def _positive_int(values: dict, key: str, default: int) -> int:
    value = values.get(key, default)
    if not _is_int(value) or value <= 0:
        raise UserError(f"dataset.{key} must be a positive integer, got {value!r}")
    return value


def _non_negative_int(values: dict, key: str, default: int) -> int:
    value = values.get(key, default)
    if not _is_int(value) or value < 0:
        raise UserError(f"dataset.{key} must be a non-negative integer, got {value!r}")
    return value


def _bool(values: dict, key: str, default: bool) -> bool:
    value = values.get(key, default)
    if not isinstance(value, bool):
        raise UserError(f"dataset.{key} must be true or false, got {value!r}")
    return value


def _val_fraction(value) -> float:
    if (_is_int(value) or isinstance(value, float)) and 0 <= value < 1:
        return float(value)
    raise UserError(f"dataset.val_fraction must be a number in [0, 1), got {value!r}")


def _per_channel(values: dict, key: str, channels: int | None) -> tuple[float, ...] | None:
    """A scalar or one number per channel; a scalar is repeated over the channels."""
    value = values.get(key)
    if value is None:
        return None
    numbers = value if isinstance(value, list) else [value]
    count = channels or 3
    if len(numbers) == 1:
        numbers = numbers * count
    valid = all((_is_int(v) or isinstance(v, float)) for v in numbers)
    if not valid or len(numbers) != count or (key == "std" and min(numbers) <= 0):
        raise UserError(
            f"dataset.{key} must be a number or {count} numbers (std > 0), got {value!r}"
        )
    return tuple(float(v) for v in numbers)
