"""CIFAR-10 splits, from an image-folder tree or torchvision's cifar-10-batches-py layout."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset
from torchvision.datasets import CIFAR10

from robustbench_cli.data.class_folders import MappedImageFolder, folder_image_transform
from robustbench_cli.data.folder_layout import (
    CIFAR10_CLASSES,
    has_split,
    split_folder,
    vocabulary_mapping,
)
from robustbench_cli.data.in_memory import InMemoryImages
from robustbench_cli.data.settings import DatasetSettings
from robustbench_cli.data.torchvision_layout import torchvision_split
from robustbench_cli.errors import UserError

_SIZE = 32


def load_cifar10_split(settings: DatasetSettings, split: str) -> Dataset:
    root = settings.root
    if settings.root_given and not root.is_dir():
        raise UserError(
            f"dataset root {root} does not exist: expected train/ and test/ class "
            f"folders or torchvision's {CIFAR10.base_folder}/"
        )
    if _is_image_folder_tree(settings):
        split_dir = split_folder(root, split)
        class_to_idx = vocabulary_mapping(split_dir, CIFAR10_CLASSES, "CIFAR-10")
        return MappedImageFolder(split_dir, class_to_idx, folder_image_transform(_SIZE, _SIZE, 3))
    dataset = _torchvision_cifar10(settings, train=split == "train")
    # N x H x W x C uint8 -> N x C x H x W, kept whole in memory.
    images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()
    return InMemoryImages(images, torch.tensor(dataset.targets))


def download_cifar10(settings: DatasetSettings) -> None:
    """Fetch the torchvision archive into data_dir/cifar10 unless the data is already there."""
    if not _is_image_folder_tree(settings):
        _torchvision_cifar10(settings, train=False)


def _is_image_folder_tree(settings: DatasetSettings) -> bool:
    return has_split(settings.root, "train") or has_split(settings.root, "test")


def _torchvision_cifar10(settings: DatasetSettings, train: bool) -> CIFAR10:
    return torchvision_split(CIFAR10, settings, train, CIFAR10.base_folder,
                             "train/ and test/ class folders")
