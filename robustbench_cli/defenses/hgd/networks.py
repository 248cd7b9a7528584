"""The denoisers: DUNET, the paper's denoising U-net, and DAE, the same net without its
lateral connections (the paper's denoising autoencoder baseline).

Feedforward path: one C2 block, then four C3 blocks whose first conv has stride 2.
Feedback path: four blocks (three C3, one C2), each upsampling its input bilinearly to the
size of the matching feedforward map, concatenating that map (DUNET only) and applying Ck.
A 1x1 conv then predicts the negative noise, which is added to the input. C is conv 3x3 +
batch norm + ReLU. Odd sizes (299 -> 150 -> 75 -> 38 -> 19) work because each upsampling
targets the lateral map's exact size.
"""

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_cli.checks import is_int
from robustbench_cli.defenses.hgd import DENOISER_NAMES
from robustbench_cli.errors import UserError

PAPER_WIDTHS = (64, 128, 256, 256, 256)
SMALL_WIDTHS = (16, 32, 64, 64, 64)  # 28x28 and 32x32 inputs: the paper's widths are for 299 px
SMALL_INPUT_PX = 32
MIN_INPUT_PX = 16  # four stride-2 convs leave a 1-pixel map


def default_widths(height: int, width: int) -> tuple[int, ...]:
    return SMALL_WIDTHS if max(height, width) <= SMALL_INPUT_PX else PAPER_WIDTHS


def conv_block(in_channels: int, out_channels: int, convs: int, stride: int = 1) -> nn.Sequential:
    """Ck: k x (conv 3x3, batch norm, ReLU); only the first conv may stride."""
    layers = []
    for index in range(convs):
        layers += [nn.Conv2d(in_channels, out_channels, 3, stride=stride if index == 0 else 1,
                             padding=1, bias=False),
                   nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
        in_channels = out_channels
    return nn.Sequential(*layers)


class DenoisingNet(nn.Module):
    """x -> x + predicted negative noise, same shape as x. `lateral=False` gives the DAE."""

    def __init__(self, channels: int, widths, lateral: bool = True):
        super().__init__()
        widths = list(widths)
        self.lateral = lateral
        self.forward_path = nn.ModuleList(
            [conv_block(channels, widths[0], 2)]
            + [conv_block(widths[i - 1], widths[i], 3, stride=2) for i in range(1, 5)])
        # Feedback block i maps the map coming from below (width widths[i + 1], or the
        # previous feedback block's widths[i + 1]) plus the lateral widths[i] to widths[i].
        self.feedback_path = nn.ModuleList(
            conv_block(widths[i + 1] + (widths[i] if lateral else 0), widths[i], 3 if i else 2)
            for i in (3, 2, 1, 0))
        self.to_noise = nn.Conv2d(widths[0], channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = []
        h = x
        for block in self.forward_path:
            h = block(h)
            maps.append(h)
        h = maps.pop()
        for block, skip in zip(self.feedback_path, reversed(maps)):
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = block(torch.cat([h, skip], 1) if self.lateral else h)
        return x + self.to_noise(h)


def denoiser_config(name, widths, channels: int, height: int, width: int) -> dict:
    """The checked denoiser config a checkpoint records: {name, widths, channels}."""
    if name not in DENOISER_NAMES:
        raise UserError(f"defense.denoiser must be one of {', '.join(DENOISER_NAMES)}, got {name!r}")
    if min(height, width) < MIN_INPUT_PX:
        raise UserError(f"the denoisers need inputs of at least {MIN_INPUT_PX}x{MIN_INPUT_PX} px, "
                        f"got {height}x{width}")
    widths = default_widths(height, width) if widths is None else widths
    if not isinstance(widths, (list, tuple)) or len(widths) != 5 or not all(
            is_int(w) and w > 0 for w in widths):
        raise UserError(f"defense.widths must be 5 positive integers (one per feedforward block) "
                        f"or null, got {widths!r}")
    return {"name": name, "widths": list(widths), "channels": channels}


def build_denoiser(config: dict) -> DenoisingNet:
    return DenoisingNet(config["channels"], config["widths"], lateral=config["name"] == "dunet")
