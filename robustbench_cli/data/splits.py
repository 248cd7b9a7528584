"""Which loader builds a dataset's train or test split, and fetching downloadable ones."""

from __future__ import annotations

from torch.utils.data import Dataset

from robustbench_cli.data.cifar10 import download_cifar10, load_cifar10_split
from robustbench_cli.data.class_folders import MappedImageFolder, folder_image_transform
from robustbench_cli.data.folder_layout import (
    class_folders,
    folder_classes,
    imagenet_wnids,
    split_folder,
    vocabulary_mapping,
)
from robustbench_cli.data.info import DatasetInfo
from robustbench_cli.data.mnist_family import download_mnist_family, load_mnist_family_split
from robustbench_cli.data.settings import DOWNLOADABLE, DatasetSettings
from robustbench_cli.errors import UserError


def load_split(settings: DatasetSettings, info: DatasetInfo, split: str) -> Dataset:
    """The whole `split` ("train" or "test"): items are ([0, 1] float image, int label)."""
    if settings.name in ("mnist", "fashion_mnist"):
        return load_mnist_family_split(settings, split)
    if settings.name == "cifar10":
        return load_cifar10_split(settings, split)
    split_dir = split_folder(settings.root, split)
    if settings.name == "imagenet_subset":
        class_to_idx = vocabulary_mapping(split_dir, imagenet_wnids(), "ImageNet-1k wnid")
        resize = settings.resize
    else:
        class_to_idx = _generic_class_mapping(settings, split)
        resize = info.height
    transform = folder_image_transform(resize, info.height, info.channels)
    return MappedImageFolder(split_dir, class_to_idx, transform)


def download_if_wanted(settings: DatasetSettings) -> None:
    """Download into data_dir/<name> when the config asks; user-given roots are never written."""
    if not settings.download or settings.root_given or settings.name not in DOWNLOADABLE:
        return
    if settings.name == "cifar10":
        download_cifar10(settings)
    else:
        download_mnist_family(settings)


def _generic_class_mapping(settings: DatasetSettings, split: str) -> dict[str, int]:
    classes = folder_classes(settings.root)
    split_dir = split_folder(settings.root, split)
    found = class_folders(split_dir)
    if found != classes:
        raise UserError(
            f"{split_dir} has classes {found} but the dataset's classes are {classes}: "
            "the train and test splits need the same class folders"
        )
    return {name: index for index, name in enumerate(classes)}
