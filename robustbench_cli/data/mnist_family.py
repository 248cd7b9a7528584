"""MNIST and Fashion-MNIST splits, from a folder of IDX files or torchvision's layout."""

from __future__ import annotations

from pathlib import Path

from torchvision.datasets import MNIST, FashionMNIST

from robustbench_cli.data.idx_files import read_idx_ubyte
from robustbench_cli.data.in_memory import InMemoryImages
from robustbench_cli.data.settings import DatasetSettings
from robustbench_cli.data.torchvision_layout import torchvision_split
from robustbench_cli.errors import UserError

_TORCHVISION_DATASETS = {"mnist": MNIST, "fashion_mnist": FashionMNIST}
_FILE_PREFIX = {"train": "train", "test": "t10k"}
_ALL_FILES = (
    "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
    "t10k-labels-idx1-ubyte (each optionally .gz)"
)


def load_mnist_family_split(settings: DatasetSettings, split: str) -> InMemoryImages:
    """One split ("train" or "test"); only that split's files need to exist."""
    root = settings.root
    if settings.root_given and not root.is_dir():
        raise UserError(f"dataset root {root} does not exist: expected a folder with {_ALL_FILES}")
    if _holds_idx_files(root):
        return _from_idx_folder(settings.name, root, split)
    dataset = _torchvision_dataset(settings, train=split == "train")
    return InMemoryImages(dataset.data, dataset.targets)


def download_mnist_family(settings: DatasetSettings) -> None:
    """Fetch the files into data_dir/<name> through torchvision unless they are already there."""
    if not _holds_idx_files(settings.root):
        _torchvision_dataset(settings, train=False)


def _holds_idx_files(root: Path) -> bool:
    return root.is_dir() and any(root.glob("*-idx[13]-ubyte*"))


def _idx_file(root: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    return None


def _from_idx_folder(name: str, root: Path, split: str) -> InMemoryImages:
    prefix = _FILE_PREFIX[split]
    stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    paths = [_idx_file(root, stem) for stem in stems]
    missing = [f"{stem}[.gz]" for stem, path in zip(stems, paths) if path is None]
    if missing:
        raise UserError(f"{name} {split} split is missing in {root}: expected {', '.join(missing)}")
    images, labels = (read_idx_ubyte(path) for path in paths)
    if len(images) != len(labels):
        raise UserError(
            f"{name} {split} split in {root}: {len(images)} images but {len(labels)} labels"
        )
    return InMemoryImages(images, labels)


def _torchvision_dataset(settings: DatasetSettings, train: bool) -> MNIST:
    dataset_class = _TORCHVISION_DATASETS[settings.name]
    return torchvision_split(dataset_class, settings, train, f"{dataset_class.__name__}/raw", _ALL_FILES)
