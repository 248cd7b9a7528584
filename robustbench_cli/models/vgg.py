"""VGG with batch norm, layer lists from torchvision, built here so width and activation apply.

Pooling adapts to the input (a pool that would shrink the map below 1 pixel is skipped), and
inputs under 64 px get the CIFAR-style single linear head instead of the 4096-unit ImageNet head.
"""

from collections import OrderedDict

from torch import nn
from torchvision.models.vgg import cfgs as TORCHVISION_LAYOUTS

from robustbench_cli.models.options import ArchOptions

LAYOUT_BY_MODEL = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}
SMALL_INPUT_PX = 64
IMAGENET_HEAD_UNITS = 4096


def build_vgg(cfg, info, options: ArchOptions) -> nn.Module:
    layout = TORCHVISION_LAYOUTS[LAYOUT_BY_MODEL[cfg.get("name")]]
    features, channels, height, width = _features(layout, info, options)
    if min(info.height, info.width) < SMALL_INPUT_PX:
        classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(channels * height * width, info.num_classes)
        )
    else:
        classifier = _imagenet_head(channels, info.num_classes, options)
    net = nn.Sequential(OrderedDict(features=features, classifier=classifier))
    _init_like_torchvision(net)
    return net


def _features(layout, info, options: ArchOptions):
    """The conv/BN/act/pool stack, and the channels and spatial size it leaves."""
    layers: list[nn.Module] = []
    channels, height, width = info.channels, info.height, info.width
    for item in layout:
        if item == "M":
            if min(height, width) >= 2:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                height, width = height // 2, width // 2
            continue
        out_channels = options.scaled(item)
        layers += [
            nn.Conv2d(channels, out_channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_channels),
            options.make_activation(),
        ]
        channels = out_channels
    return nn.Sequential(*layers), channels, height, width


def _imagenet_head(channels: int, num_classes: int, options: ArchOptions) -> nn.Module:
    units = options.scaled(IMAGENET_HEAD_UNITS)
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(7),
        nn.Flatten(),
        nn.Linear(channels * 7 * 7, units),
        options.make_activation(),
        nn.Dropout(0.5),
        nn.Linear(units, units),
        options.make_activation(),
        nn.Dropout(0.5),
        nn.Linear(units, num_classes),
    )


def _init_like_torchvision(net: nn.Module) -> None:
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0, 0.01)
            nn.init.zeros_(module.bias)
