"""Datasets for robustness experiments: one LightningDataModule over a small registry
(mnist, fashion_mnist, cifar10, imagenet_subset, image_folder).

`DatasetInfo` and `dataset_info` need no torch; `RobustDataModule` (torch, Lightning)
is imported on first use so that importing this package stays cheap.
"""

from robustbench_cli.data.info import DatasetInfo, dataset_info

__all__ = ["DatasetInfo", "RobustDataModule", "dataset_info"]


def __getattr__(name: str):
    if name == "RobustDataModule":
        from robustbench_cli.data.module import RobustDataModule

        return RobustDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
