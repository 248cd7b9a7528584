"""Inception-v3 (torchvision's layout), with model.width and model.activation applied.

Kurakin et al. 2017 (document 004) vary Inception-v3 in two ways this builder supports:
the capacity study (Section 4.3, Figures 1 and 4) multiplies the number of filters of every
convolution by a factor rho (`model.width`), and the activation study (Appendix D, Table 7)
swaps relu for relu6, ReluDecay_beta or tanh (`model.activation`, `model.activation_beta`).

torchvision's Inception3 takes the class its blocks build their convolutions from; ours
scales the filters and uses the chosen activation. The blocks concatenate branches and pass
pooled inputs through, so with scaled filters a block's input channels are no longer the
numbers written in torchvision's layout: each convolution reads its input channels from a
first forward pass instead (a lazy convolution, materialised right after construction).
At width 1 with relu the network, and its parameter names, are torchvision's.
"""

from functools import partial

import torch
from torch import nn
from torchvision.models import Inception_V3_Weights, inception_v3
from torchvision.models.inception import (
    Inception3,
    InceptionA,
    InceptionAux,
    InceptionB,
    InceptionC,
    InceptionD,
    InceptionE,
)

from robustbench_cli.checks import flag
from robustbench_cli.errors import UserError
from robustbench_cli.models.options import ArchOptions

MIN_INPUT_PX = 75  # smaller maps shrink to nothing before the final pooling
IMAGENET_CLASSES = 1000
INIT_STD = 0.1  # torchvision's Inception-v3 init: truncated normal, std 0.1, cut at +-2


class ConvBlock(nn.Module):
    """conv (no bias) -> batch norm -> activation, as torchvision's BasicConv2d, with
    `options.width` times the filters (never fewer than one) and `options`' activation.
    The input channels passed in (torchvision's unscaled count) are ignored: see the module
    docstring."""

    def __init__(self, in_channels: int, out_channels: int, *, options: ArchOptions, **conv_args):
        super().__init__()
        del in_channels
        channels = options.scaled(out_channels)
        self.conv = nn.LazyConv2d(channels, bias=False, **conv_args)
        self.bn = nn.BatchNorm2d(channels, eps=0.001)
        self.act = options.make_activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


def build_inception_v3(cfg, info, options: ArchOptions) -> nn.Module:
    if info.channels != 3:
        raise UserError(f"inception_v3 needs 3-channel images, got {info.channels}")
    if min(info.height, info.width) < MIN_INPUT_PX:
        raise UserError(
            f"inception_v3 needs inputs of at least {MIN_INPUT_PX}x{MIN_INPUT_PX} px, "
            f"got {info.height}x{info.width}"
        )
    if flag("model.pretrained", cfg.get("pretrained", False)):
        if options.width != 1.0 or options.activation != "relu":
            raise UserError(
                "model.pretrained=true loads torchvision's weights, which fit only "
                "model.width=1.0 and model.activation=relu"
            )
        return _pretrained(info.num_classes)
    return _scaled(info.num_classes, options)


def _scaled(num_classes: int, options: ArchOptions) -> nn.Module:
    conv = partial(ConvBlock, options=options)
    blocks = [conv] + [partial(block, conv_block=conv) for block in
                       (InceptionA, InceptionB, InceptionC, InceptionD, InceptionE, InceptionAux)]
    net = Inception3(num_classes=num_classes, aux_logits=False, transform_input=False,
                     inception_blocks=blocks, init_weights=False)
    net.fc = nn.LazyLinear(num_classes)  # Mixed_7c's channels, whatever the width
    net.eval()
    with torch.no_grad():  # eval mode: the batch-norm statistics stay untouched
        net(torch.zeros(1, 3, MIN_INPUT_PX, MIN_INPUT_PX))
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(module.weight, mean=0.0, std=INIT_STD, a=-2, b=2)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    if net.fc.bias is not None:
        _fc_bias_like_torchvision(net.fc)
    return net.train()


def _fc_bias_like_torchvision(fc: nn.Linear) -> None:
    """torchvision leaves the classifier's bias at nn.Linear's default (uniform in
    +-1/sqrt(fan_in)); LazyLinear left it uninitialised until materialised, so set it so."""
    bound = fc.in_features ** -0.5
    nn.init.uniform_(fc.bias, -bound, bound)


def _pretrained(num_classes: int) -> nn.Module:
    if num_classes != IMAGENET_CLASSES:
        raise UserError(
            f"model.pretrained=true needs the {IMAGENET_CLASSES} ImageNet classes, "
            f"the dataset has {num_classes}"
        )
    # The weights were trained on ImageNet-normalised inputs remapped by transform_input.
    # torchvision insists on aux_logits=True when loading them, so the aux head is dropped after.
    try:
        model = inception_v3(weights=Inception_V3_Weights.IMAGENET1K_V1, transform_input=True)
    except Exception as exc:
        reason = " ".join(str(exc).split())
        raise UserError(
            f"could not download Inception-v3 ImageNet weights (offline?): {reason}; "
            "set model.pretrained=false or put the file in TORCH_HOME/hub/checkpoints"
        ) from exc
    model.aux_logits = False
    model.AuxLogits = None
    return model
