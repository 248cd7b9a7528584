"""The LightningDataModule every command uses: limited, split and batched datasets."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from robustbench_cli.data.augmentation import AugmentedImages, train_augmentation
from robustbench_cli.data.info import DatasetInfo, info_for
from robustbench_cli.data.settings import parse_settings
from robustbench_cli.data.splits import download_if_wanted, load_split
from robustbench_cli.data.subsets import class_balanced_indices, hold_out, labels_of
from robustbench_cli.errors import UserError


class RobustDataModule(pl.LightningDataModule):
    """Train/val/test loaders of the `dataset` config node.

    Splits load lazily, so a test-only evaluation never needs the train files.
    Items are ([0, 1] float image of shape info.input_shape, int label); normalisation
    belongs to the model.
    """

    def __init__(self, cfg, data_dir: str, seed: int = 0):
        super().__init__()
        self.settings = parse_settings(cfg, data_dir)
        self.info: DatasetInfo = info_for(self.settings)
        self.seed = seed
        self._fit_datasets: tuple[Dataset, Dataset | None] | None = None
        self._test: Dataset | None = None

    def prepare_data(self) -> None:
        # Lightning calls this once per node, so ranks never download concurrently.
        download_if_wanted(self.settings)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit", "validate"):
            self._fit_splits()
        if stage in (None, "test", "predict"):
            self.test_dataset()

    def test_dataset(self) -> Dataset:
        """The test split cut to `limit_test`, without augmentation: what evaluation runs on."""
        if self._test is None:
            dataset = load_split(self.settings, self.info, "test")
            indices = self._limited_indices(dataset, self.settings.limit_test, "limit_test",
                                            self.settings.test_classes)
            self._test = Subset(dataset, indices)
        return self._test

    def train_dataloader(self) -> DataLoader:
        return self._loader(self._fit_splits()[0], shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        val = self._fit_splits()[1]
        # An empty list tells Lightning there is nothing to validate (val_fraction 0).
        return [] if val is None else self._loader(val, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset(), shuffle=False)

    def statistics_dataloader(self) -> DataLoader:
        """The training examples in order and without augmentation, for statistics over the
        training data (pruning's mean activations)."""
        train = self._fit_splits()[0]
        return self._loader(train.dataset if isinstance(train, AugmentedImages) else train, shuffle=False)

    def _fit_splits(self) -> tuple[Dataset, Dataset | None]:
        if self._fit_datasets is None:
            dataset = load_split(self.settings, self.info, "train")
            limited = self._limited_indices(dataset, self.settings.limit_train, "limit_train",
                                            self.settings.train_classes)
            train_indices, val_indices = hold_out(limited, self.settings.val_fraction, self.seed)
            train: Dataset = Subset(dataset, train_indices)
            if self.settings.augment:
                train = AugmentedImages(train, train_augmentation(self.info))
            val = Subset(dataset, val_indices) if val_indices else None
            self._fit_datasets = (train, val)
        return self._fit_datasets

    def _limited_indices(self, dataset: Dataset, limit: int | None, what: str, classes) -> list[int]:
        """The split's items of `classes` (all when None), cut to a class-balanced `limit`."""
        if limit is None and classes is None:
            return list(range(len(dataset)))
        labels = labels_of(dataset)
        indices = list(range(len(labels)))
        if classes is not None:
            key = f"dataset.{what.split('_')[1]}_classes"  # limit_test -> dataset.test_classes
            if max(classes) >= self.info.num_classes:
                raise UserError(f"{key} has class {max(classes)}, the data has {self.info.num_classes}")
            wanted = set(classes)
            indices = [i for i in indices if labels[i] in wanted]
        if limit is None:
            return indices
        picked = class_balanced_indices([labels[i] for i in indices], limit, f"dataset.{what}")
        return [indices[p] for p in picked]

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        workers = self.settings.num_workers
        return DataLoader(
            dataset,
            batch_size=self.settings.batch_size,
            shuffle=shuffle,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
        )
