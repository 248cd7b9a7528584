"""LightningModule that trains a denoiser in front of a frozen classifier under a guide loss.

The target classifier stays in eval mode with frozen weights (Lightning's `train()` calls are
overridden for it) and its weights stay out of the checkpoint: the checkpoint holds the
denoiser (`denoiser.*`) and the "robust" metadata only. Validation selects on the guide
loss; validation and test also log the denoising L1 and the target's accuracy on denoised
and on undenoised noisy images.
"""

from collections.abc import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from robustbench_cli.checkpoints import META_KEY
from robustbench_cli.lit.optim import configure

TARGET_PREFIX = "target."
STAGE_SEEDS = {"train": 0, "val": 1 << 20, "test": 2 << 20}  # separate pair streams per stage


class DenoiserModule(pl.LightningModule):
    """`guide(target, denoised, clean, y) -> loss` and `pairs` (online pair making:
    `pairs.mixed(x, y, generator) -> noisy x`) come from the defense that trains the
    denoiser (defenses.hgd), so this module knows nothing of how they are made."""

    def __init__(self, denoiser: torch.nn.Module, target: torch.nn.Module, guide: Callable,
                 optim: dict, meta: dict,
                 pairs=None, seed: int = 0, monitor: str = "val_loss"):
        super().__init__()
        self.denoiser = denoiser
        self.target = target.eval().requires_grad_(False)
        self.guide = guide
        self.optim = dict(optim)
        self.monitor = monitor  # what optim.schedule=plateau watches
        self.meta = meta
        self.pairs = pairs  # online: pairs made per batch from clean (x, y) batches
        self.seed = seed
        self._train_generator = torch.Generator().manual_seed(seed)
        classes = meta["info"]["num_classes"]
        self.accuracy = torch.nn.ModuleDict({
            f"{stage}_{which}": MulticlassAccuracy(classes, average="micro")
            for stage in ("val", "test") for which in ("acc", "undefended_acc")})

    def train(self, mode: bool = True):
        super().train(mode)
        self.target.eval()  # BatchNorm statistics and dropout of the target never change
        return self

    def forward(self, x):
        return self.denoiser(x)

    def _pairs(self, batch, stage: str, batch_idx: int):
        if len(batch) == 3:
            return batch
        x, y = batch
        # Validation and test pairs are the same every epoch: seeded by stage and batch.
        generator = self._train_generator if stage == "train" else \
            torch.Generator().manual_seed(self.seed + STAGE_SEEDS[stage] + batch_idx)
        return self.pairs.mixed(x, y, generator), x, y

    def training_step(self, batch, batch_idx):
        noisy, clean, y = self._pairs(batch, "train", batch_idx)
        loss = self.guide(self.target, self.denoiser(noisy), clean, y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss.item()} at step {self.global_step}")
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        return loss

    def _evaluate(self, batch, batch_idx, stage: str) -> None:
        noisy, clean, y = self._pairs(batch, stage, batch_idx)
        denoised = self.denoiser(noisy)
        self.log(f"{stage}_loss", self.guide(self.target, denoised, clean, y), prog_bar=True,
                 sync_dist=True)
        self.log(f"{stage}_denoise_l1", F.l1_loss(denoised, clean), sync_dist=True)
        for which, images in (("acc", denoised), ("undefended_acc", noisy)):
            metric = self.accuracy[f"{stage}_{which}"]
            metric(self.target(images), y)
            self.log(f"{stage}_{which}", metric, prog_bar=which == "acc")

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, batch_idx, "val")

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, batch_idx, "test")

    def configure_optimizers(self):
        return configure(self.denoiser.parameters(), self.optim, self.trainer.max_epochs, self.monitor)

    def on_save_checkpoint(self, checkpoint):
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items()
                                    if not k.startswith(TARGET_PREFIX)}
        checkpoint[META_KEY] = self.meta

    def on_load_checkpoint(self, checkpoint):
        # The target is not saved: put its current weights back so loading stays strict.
        checkpoint["state_dict"].update(
            {TARGET_PREFIX + k: v for k, v in self.target.state_dict().items()})
