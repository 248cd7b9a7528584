"""LightningModule that trains any classifier under a training objective and records what it is.

The objective decides what one training batch costs (plain loss, noisy inputs, Kurakin's
adversarial mix, distillation's soft labels); the head decides the per-example criterion
(softmax cross-entropy or the linear-quadratic cost). Validation and test always measure
plain clean accuracy, so every defense is selected and compared on the same footing.
"""

from collections.abc import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from robustbench_cli.checkpoints import META_KEY, weights_sha256
from robustbench_cli.errors import UserError
from robustbench_cli.lit.optim import configure

HEADS = ("sce", "lq")


def head_criterion(head: str, num_classes: int) -> Callable:
    """Per-example loss of logits against integer labels (reduction='none')."""
    if head == "sce":
        return lambda logits, y: F.cross_entropy(logits, y, reduction="none")
    if head == "lq":
        # Linear-quadratic: no softmax, squared distance of the outputs to the one-hot target.
        return lambda logits, y: (logits - F.one_hot(y, num_classes).to(logits.dtype)).pow(2).sum(1)
    raise UserError(f"model.head must be one of {', '.join(HEADS)}, got {head!r}")


def plain_objective(module: "ClassifierModule", x, y):
    """Mean criterion on the batch as given: (loss, logits for the train metric, their labels)."""
    logits = module(x)
    return module.criterion(logits, y).mean(), logits, y


class ClassifierModule(pl.LightningModule):
    """Wraps `model` (attribute name fixed: checkpoints store its weights as `model.*`)."""

    def __init__(self, model: torch.nn.Module, optim: dict, meta: dict, max_epochs: int,
                 objective: Callable = plain_objective):
        super().__init__()
        self.model = model
        self.optim = dict(optim)
        self.meta = meta
        self.max_epochs = max_epochs
        self.objective = objective
        classes = meta["info"]["num_classes"]
        if classes < 2:
            name = meta["info"]["name"]
            raise UserError(f"training needs at least 2 classes; the {name} data has {classes}")
        self.criterion = head_criterion(meta["model"].get("head", "sce"), classes)
        # ModuleDict keys must not shadow nn.Module attributes ("train"), hence the suffix.
        self.accuracy = torch.nn.ModuleDict({
            f"{stage}_acc": MulticlassAccuracy(classes, average="micro")
            for stage in ("train", "val", "test")})
        self.test_top5 = MulticlassAccuracy(classes, top_k=5, average="micro") if classes > 5 else None

    def forward(self, x):
        return self.model(x)

    def _log(self, stage: str, loss, logits, y) -> None:
        metric = self.accuracy[f"{stage}_acc"]
        metric(logits, y)
        self.log(f"{stage}_loss", loss, prog_bar=stage != "test", sync_dist=stage != "train")
        self.log(f"{stage}_acc", metric, prog_bar=True)

    def training_step(self, batch, batch_idx):
        loss, logits, y = self.objective(self, *batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss.item()} at step {self.global_step}")
        self._log("train", loss, logits.detach(), y)
        return loss

    def _evaluate(self, batch, stage: str):
        x, y = batch
        logits = self(x)
        self._log(stage, self.criterion(logits, y).mean(), logits, y)
        return logits, y

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx):
        logits, y = self._evaluate(batch, "test")
        if self.test_top5 is not None:
            self.test_top5(logits, y)
            self.log("test_top5", self.test_top5)

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        monitor = "val_loss" if self.trainer.limit_val_batches else None  # plateau's signal
        return configure(params, self.optim, self.max_epochs, monitor)

    def on_save_checkpoint(self, checkpoint):
        checkpoint[META_KEY] = {**self.meta, "weights_sha256": weights_sha256(checkpoint["state_dict"])}
