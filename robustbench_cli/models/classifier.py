"""The wrapper every model shares: normalisation inside the model, then the network."""

from collections.abc import Sequence

import torch
from torch import nn


class Normalize(nn.Module):
    """Per-channel (x - mean) / std; buffers so they follow the model across devices."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer(
            "mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
        )
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


class Classifier(nn.Module):
    """Images in [0, 1] (NCHW) -> logits (N, classes); attacks and eps stay in pixel space."""

    def __init__(self, normalize: Normalize, net: nn.Module, guide_layer: str | None = None):
        super().__init__()
        self.normalize = normalize
        self.net = net
        # The topmost feature map (the model config's `guide_layer`, resolved to its
        # named_modules() name): what HGD's feature-guided loss compares. Not a weight.
        self.guide_layer = guide_layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


def resolve_layer(model: nn.Module, name) -> str | None:
    """The `named_modules()` name of layer `name`, or None when there is no such layer.

    A dotted part that is a negative integer counts from the end of its parent's children
    ("net.-2": the second-to-last layer of `net`), so a config can name "the last hidden
    layer" of a network whose depth it does not fix."""
    if not isinstance(name, str) or not name:
        return None
    module, parts = model, []
    for part in name.split("."):
        children = dict(module.named_children())
        if part.startswith("-") and part[1:].isdigit():
            names = list(children)
            index = len(names) + int(part)
            if not 0 <= index < len(names):
                return None
            part = names[index]
        if part not in children:
            return None
        module = children[part]
        parts.append(part)
    return ".".join(parts)
