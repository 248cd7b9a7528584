"""A whole split held as one uint8 tensor: small datasets (MNIST, CIFAR) without per-item decoding."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class InMemoryImages(Dataset):
    """Items are (float image in [0, 1] of shape (C, H, W), int label).

    uint8 storage keeps memory at a quarter of float; conversion happens per item.
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor):
        if images.dim() == 3:  # greyscale N x H x W
            images = images.unsqueeze(1)
        if images.dtype != torch.uint8 or images.dim() != 4 or len(images) != len(targets):
            raise ValueError(
                f"expected N x C x H x W uint8 images and N labels, got {tuple(images.shape)} "
                f"{images.dtype} and {len(targets)} labels"
            )
        self.images = images
        self.targets = targets.long()  # named as torchvision's datasets name their labels

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index].float().div_(255), int(self.targets[index])
