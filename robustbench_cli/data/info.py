"""What a model needs to know about a dataset: input shape, class count, normalisation."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from robustbench_cli.data.folder_layout import folder_classes
from robustbench_cli.data.settings import DatasetSettings, parse_settings


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    channels: int
    height: int
    width: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self):
        # Rebuilt from JSON the statistics arrive as lists; keep the frozen value hashable.
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    def to_dict(self) -> dict:
        values = asdict(self)
        values["mean"], values["std"] = list(self.mean), list(self.std)
        return values


# Published per-channel statistics of each training set (pixels in [0, 1]).
_FIXED = {
    "mnist": DatasetInfo("mnist", 1, 28, 28, 10, (0.1307,), (0.3081,)),
    "fashion_mnist": DatasetInfo("fashion_mnist", 1, 28, 28, 10, (0.2860,), (0.3530,)),
    "cifar10": DatasetInfo(
        "cifar10", 3, 32, 32, 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    ),
}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_FOLDER_DEFAULT_STAT = 0.5


def dataset_info(cfg, data_dir: str) -> DatasetInfo:
    """DatasetInfo of the `dataset` config node, without reading any image."""
    return info_for(parse_settings(cfg, data_dir))


def info_for(settings: DatasetSettings) -> DatasetInfo:
    if settings.name in _FIXED:
        return _FIXED[settings.name]
    size = settings.image_size
    if settings.name == "imagenet_subset":
        return DatasetInfo(settings.name, 3, size, size, 1000, _IMAGENET_MEAN, _IMAGENET_STD)
    channels = settings.channels
    default_stat = (_FOLDER_DEFAULT_STAT,) * channels
    return DatasetInfo(
        name=settings.name,
        channels=channels,
        height=size,
        width=size,
        num_classes=len(folder_classes(settings.root)),
        mean=settings.mean or default_stat,
        std=settings.std or default_stat,
    )
