"""Image-folder splits whose class folders get indices from a given name -> index mapping."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import default_loader
from torchvision.transforms import v2

from robustbench_cli.errors import UserError


def _load_image(path: str):
    """PIL's loader, but an unreadable file stops the run with a one-line error naming it
    (skipping it silently would change n and every accuracy)."""
    try:
        return default_loader(path)
    except OSError as error:
        raise UserError(f"unreadable image {path}: {error} (fix or remove the file)") from None


class MappedImageFolder(ImageFolder):
    """torchvision's ImageFolder, but labels come from `class_to_idx` instead of folder order.

    That keeps standard indices (ImageNet-1k, CIFAR-10) when only some classes are present.
    Images of any size are resized and cropped by the transform.
    """

    def __init__(self, split_dir: Path, class_to_idx: dict[str, int], transform):
        self._fixed_class_to_idx = dict(class_to_idx)
        try:
            super().__init__(str(split_dir), transform=transform, loader=_load_image)
        except FileNotFoundError as error:  # a class folder without a single image
            raise UserError(f"{split_dir}: {str(error).splitlines()[0]}") from error

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        return sorted(self._fixed_class_to_idx), self._fixed_class_to_idx


def folder_image_transform(resize: int, crop: int, channels: int) -> v2.Compose:
    """PIL image -> float tensor in [0, 1]: short side to `resize`, centre `crop`, 1 or 3 channels."""
    steps = [v2.Grayscale(num_output_channels=1)] if channels == 1 else []
    steps += [
        v2.Resize(resize),
        v2.CenterCrop(crop),
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.ToPureTensor(),  # plain tensors downstream, not tv_tensors.Image
    ]
    return v2.Compose(steps)
