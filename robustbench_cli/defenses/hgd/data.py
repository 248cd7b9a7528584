"""The denoiser's LightningDataModule: pair loaders over the classifier's data module.

Offline (default), the pairs of every split are generated once, in `prepare_data` (rank 0
only under DDP), into the run folder as hgd_pairs_<key>.pt; a set with the same key found
under paths.output_dir (an earlier denoiser run with the same attacks, eps, source weights
and data) is reused instead. Online, the loaders give clean (image, label) batches and the
LightningModule makes fresh pairs from them.
"""

import io
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from robustbench_cli.defenses.hgd.pairs import PairDataset, PairMaker, cache_key, generate
from robustbench_cli.reporting.atomic import atomic_write_bytes


class DenoiserData(pl.LightningDataModule):
    def __init__(self, data, maker: PairMaker, online: bool, record: dict, run_dir, output_dir,
                 seed: int):
        super().__init__()
        self.data = data  # RobustDataModule
        self.maker = maker
        self.online = online
        self.key = cache_key(record)
        self.run_path = Path(run_dir) / f"hgd_pairs_{self.key}.pt"
        self.output_dir = Path(output_dir)
        self.seed = seed
        self._pairs: dict | None = None

    def cached_path(self) -> Path | None:
        """This run's pairs file, else the newest earlier one with the same key."""
        if self.run_path.is_file():
            return self.run_path
        found = sorted(self.output_dir.rglob(self.run_path.name),
                       key=lambda path: path.stat().st_mtime)
        return found[-1] if found else None

    def prepare_data(self) -> None:
        self.data.prepare_data()
        if self.online or self.cached_path() is not None:
            return
        device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
        val = self.data.val_dataloader()  # [] when dataset.val_fraction is 0
        splits = {"train": self.data.statistics_dataloader().dataset,
                  "val": None if isinstance(val, list) else val.dataset,
                  "test": self.data.test_dataset()}
        pairs = {}
        for offset, (split, dataset) in enumerate(splits.items()):
            if dataset is None:
                continue
            print(f"making {split} pairs: {len(dataset)} images x {len(self.maker.entries)} attacks")
            pairs[split] = generate(self.maker, dataset, self.data.settings.batch_size,
                                    self.seed + offset, device)
        buffer = io.BytesIO()
        torch.save({"key": self.key, **pairs}, buffer)
        self.run_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.run_path, buffer.getvalue())  # a killed run leaves no half file to reuse

    def training_data(self) -> str:
        """What the denoiser is trained on, for the run's metrics."""
        return "online" if self.online else str(self.cached_path().resolve())

    def _split(self, split: str):
        if self.online:
            return None
        if self._pairs is None:
            self._pairs = torch.load(self.cached_path(), map_location="cpu", weights_only=True)
        return PairDataset(self._pairs[split]) if split in self._pairs else None

    def train_dataloader(self):
        if self.online:
            return self.data.train_dataloader()
        return self._loader(self._split("train"), shuffle=True)

    def val_dataloader(self):
        if self.online:
            return self.data.val_dataloader()
        val = self._split("val")
        return [] if val is None else self._loader(val, shuffle=False)

    def test_dataloader(self):
        if self.online:
            return self.data.test_dataloader()
        return self._loader(self._split("test"), shuffle=False)

    def _loader(self, dataset, shuffle: bool) -> DataLoader:
        return DataLoader(dataset, batch_size=self.data.settings.batch_size, shuffle=shuffle,
                          num_workers=self.data.settings.num_workers,
                          persistent_workers=self.data.settings.num_workers > 0)
