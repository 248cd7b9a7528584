"""Small convolutional net: (conv3x3, act, conv3x3, act, max-pool) blocks, one hidden dense layer."""

from collections import OrderedDict

from torch import nn

from robustbench_cli.checks import positive_int
from robustbench_cli.models.options import ArchOptions, positive_int_list, required


def build_cnn(cfg, info, options: ArchOptions) -> nn.Module:
    channels = positive_int_list("model.channels", required(cfg, "channels"))
    hidden = options.scaled(positive_int("model.hidden", required(cfg, "hidden")))
    layers: list[nn.Module] = []
    in_channels, height, width = info.channels, info.height, info.width
    for out_channels in channels:
        out_channels = options.scaled(out_channels)
        layers += [
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            options.make_activation(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            options.make_activation(),
        ]
        # Pooling a 1-pixel map would leave nothing: small inputs keep their size instead.
        if min(height, width) >= 2:
            layers.append(nn.MaxPool2d(2))
            height, width = height // 2, width // 2
        in_channels = out_channels
    classifier = nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_channels * height * width, hidden),
        options.make_activation(),
        nn.Linear(hidden, info.num_classes),
    )
    return nn.Sequential(OrderedDict(features=nn.Sequential(*layers), classifier=classifier))
