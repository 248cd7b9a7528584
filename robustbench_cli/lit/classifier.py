"""LightningModule that trains any classifier with cross-entropy and records what it is."""

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from robustbench_cli.checkpoints import META_KEY


class ClassifierModule(pl.LightningModule):
    """Wraps `model` (attribute name fixed: checkpoints store its weights as `model.*`)."""

    def __init__(self, model: torch.nn.Module, optim: dict, meta: dict, max_epochs: int):
        super().__init__()
        self.model = model
        self.optim = dict(optim)
        self.meta = meta
        self.max_epochs = max_epochs
        classes = meta["info"]["num_classes"]
        # ModuleDict keys must not shadow nn.Module attributes ("train"), hence the suffix.
        self.accuracy = torch.nn.ModuleDict({
            f"{stage}_acc": MulticlassAccuracy(classes, average="micro")
            for stage in ("train", "val", "test")})
        self.test_top5 = MulticlassAccuracy(classes, top_k=5, average="micro") if classes > 5 else None

    def forward(self, x):
        return self.model(x)

    def loss(self, logits, y):
        return F.cross_entropy(logits, y)

    def _step(self, batch, stage: str):
        x, y = batch
        logits = self(x)
        loss = self.loss(logits, y)
        metric = self.accuracy[f"{stage}_acc"]
        metric(logits, y)
        self.log(f"{stage}_loss", loss, prog_bar=stage != "test", sync_dist=stage != "train")
        self.log(f"{stage}_acc", metric, prog_bar=True)
        return loss, logits, y

    def training_step(self, batch, batch_idx):
        loss, _, _ = self._step(batch, "train")
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {self.global_step}")
        return loss

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        _, logits, y = self._step(batch, "test")
        if self.test_top5 is not None:
            self.test_top5(logits, y)
            self.log("test_top5", self.test_top5)

    def configure_optimizers(self):
        o = self.optim
        if o["name"] == "sgd":
            optimizer = torch.optim.SGD(self.parameters(), lr=o["lr"], momentum=o["momentum"],
                                        weight_decay=o["weight_decay"])
        else:
            optimizer = torch.optim.Adam(self.parameters(), lr=o["lr"], weight_decay=o["weight_decay"])
        if o["scheduler"] == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.max_epochs)
            return {"optimizer": optimizer, "lr_scheduler": scheduler}
        return optimizer

    def on_save_checkpoint(self, checkpoint):
        checkpoint[META_KEY] = self.meta
