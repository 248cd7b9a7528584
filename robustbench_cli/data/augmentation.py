"""Training-time augmentation, applied to [0, 1] image tensors after loading."""

from __future__ import annotations

from torch.utils.data import Dataset
from torchvision.transforms import v2

from robustbench_cli.data.info import DatasetInfo


def train_augmentation(info: DatasetInfo) -> v2.Compose:
    """Random crop with 1/8 padding (4 px on CIFAR-10) and horizontal flip.

    Digits are not mirrored: a flipped MNIST digit is often not the same digit.
    """
    steps = [v2.RandomCrop((info.height, info.width), padding=info.height // 8)]
    if info.name != "mnist":
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps)


class AugmentedImages(Dataset):
    """Applies `augment` to each image of `dataset`, leaving labels alone."""

    def __init__(self, dataset: Dataset, augment):
        self.dataset = dataset
        self.augment = augment

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        image, label = self.dataset[index]
        return self.augment(image), label
