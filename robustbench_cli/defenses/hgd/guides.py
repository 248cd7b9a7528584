"""Guidance losses: what the denoiser is trained to make the denoised image agree on.

pixel: L1 between denoised and clean image (the paper's PGD, renamed to avoid the attack).
fgd:   L1 between the target's maps at one layer (default the topmost feature map, the
       model config's guide_layer: Mixed_7c for Inception-v3, as in the paper).
lgd:   L1 between the target's logits.
cgd:   cross-entropy of the target on the denoised image with the true label.
The clean image's side is a constant (no gradient); the target itself is never trained.
"""

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_cli.defenses.hgd import GUIDE_NAMES
from robustbench_cli.defenses.hgd.layers import check_layer, default_guide_layer, layer_outputs
from robustbench_cli.errors import UserError


def guide_config(name, layer, target: nn.Module) -> dict:
    """The checked guide a checkpoint records: {name, layer} (layer only for fgd)."""
    if name not in GUIDE_NAMES:
        raise UserError(f"defense.guide must be one of {', '.join(GUIDE_NAMES)}, got {name!r}")
    if name != "fgd":
        if layer is not None:
            raise UserError(f"defense.guide_layer applies to guide=fgd, not {name}")
        return {"name": name, "layer": None}
    layer = default_guide_layer(target) if layer is None else check_layer(target, layer)
    return {"name": name, "layer": layer}


class GuideLoss:
    """loss(target, denoised, clean, y) -> scalar, for one guide config."""

    def __init__(self, config: dict):
        self.name, self.layer = config["name"], config["layer"]

    def _response(self, target: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.name == "fgd":
            return layer_outputs(target, [self.layer], x)[self.layer]
        return target(x)

    def __call__(self, target: nn.Module, denoised, clean, y) -> torch.Tensor:
        if self.name == "pixel":
            return F.l1_loss(denoised, clean)
        if self.name == "cgd":
            return F.cross_entropy(target(denoised), y)
        with torch.no_grad():
            wanted = self._response(target, clean)
        return F.l1_loss(self._response(target, denoised), wanted)
