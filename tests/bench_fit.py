"""`make bench` (part 2): the cost of `robust train`'s fit loop against a plain PyTorch loop.

The same CNN, data (12,000 Fashion-MNIST training images, 10% held out for validation),
batch size (128), optimizer (Adam, lr 1e-3), determinism (`trainer.deterministic=true`, the
CPU default) and validation pass every epoch, timed epoch by epoch: ours through the one fit
helper (`lit/fit.py`, as every `robust train` fits), the plain loop by hand. The two run in
alternation, EPOCHS epochs each, and the median epoch (the first, warm-up, left out) is
compared. Target: ours / plain <= 1.1.
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import Callback
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import FASHION, compose  # noqa: E402

from robustbench_cli.data import RobustDataModule  # noqa: E402
from robustbench_cli.lit.classifier import ClassifierModule  # noqa: E402
from robustbench_cli.lit.fit import fit  # noqa: E402
from robustbench_cli.models import build_model  # noqa: E402

EPOCHS, TRAIN_IMAGES, BATCH = 4, 12000, 128
TARGET = 1.1


class EpochTimer(Callback):
    """Seconds per epoch, training and validation together."""

    def __init__(self):
        self.seconds, self._start = [], None

    def on_train_epoch_start(self, trainer, pl_module):
        self._start = time.perf_counter()

    def on_validation_epoch_end(self, trainer, pl_module):
        if not trainer.sanity_checking and self._start is not None:
            self.seconds.append(time.perf_counter() - self._start)
            self._start = None


def config():
    return compose("train", "model=cnn", "dataset=fashion_mnist", f"dataset.root={FASHION}",
                   f"dataset.limit_train={TRAIN_IMAGES}", "dataset.limit_test=500",
                   f"dataset.batch_size={BATCH}", "seed=0")


def data_module(cfg):
    data = RobustDataModule(cfg.dataset, data_dir=cfg.paths.data_dir, seed=cfg.seed)
    data.prepare_data()
    data.setup("fit")
    return data


def ours(cfg, data, epochs: int) -> list[float]:
    pl.seed_everything(0, verbose=False)
    model = build_model(OmegaConf.to_container(cfg.model), data.info)
    meta = {"model": OmegaConf.to_container(cfg.model), "info": data.info.to_dict()}
    module = ClassifierModule(model, OmegaConf.to_container(cfg.optim), meta, epochs)
    timer = EpochTimer()
    with tempfile.TemporaryDirectory() as folder:
        fit(module, data, folder, trainer_cfg=OmegaConf.to_container(cfg.trainer, resolve=True),
            epochs=epochs, monitor="val_acc", mode="max", callbacks=[timer])
    return timer.seconds


def plain(cfg, data, epochs: int) -> list[float]:
    pl.seed_everything(0, verbose=False)
    torch.use_deterministic_algorithms(True)
    model = build_model(OmegaConf.to_container(cfg.model), data.info)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        for x, y in data.train_dataloader():
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in data.val_dataloader())
        assert correct > 0
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    cfg = config()
    data = data_module(cfg)
    timings = {"robust train (lit/fit.py)": [], "plain PyTorch loop": []}
    for _ in range(2):  # alternate, so both see the same machine load
        timings["robust train (lit/fit.py)"] += ours(cfg, data, EPOCHS // 2 + 1)[1:]
        timings["plain PyTorch loop"] += plain(cfg, data, EPOCHS // 2 + 1)[1:]
    median = {name: statistics.median(values) for name, values in timings.items()}
    ratio = median["robust train (lit/fit.py)"] / median["plain PyTorch loop"]
    table = Table(title=f"Fit loop: CNN, {TRAIN_IMAGES} Fashion-MNIST images (10% validation), "
                        f"batch {BATCH}, deterministic, {torch.get_num_threads()} threads")
    for column in ("loop", "median s / epoch", "epochs timed"):
        table.add_column(column, justify="right")
    for name, values in timings.items():
        table.add_row(name, f"{median[name]:.2f}", str(len(values)))
    console = Console(width=150)
    console.print(table)
    console.print(f"ratio ours / plain = {ratio:.2f} (target <= {TARGET})")


if __name__ == "__main__":
    main()
