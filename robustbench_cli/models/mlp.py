"""Multi-layer perceptron: flatten -> (Linear, activation) per hidden layer -> logits."""

from torch import nn

from robustbench_cli.models.options import ArchOptions, positive_int_list, required


def build_mlp(cfg, info, options: ArchOptions) -> nn.Module:
    # An empty list is allowed: a linear classifier is a classic baseline for robustness.
    hidden = positive_int_list("model.hidden", required(cfg, "hidden"), allow_empty=True)
    layers: list[nn.Module] = [nn.Flatten()]
    features = info.channels * info.height * info.width
    for units in hidden:
        units = options.scaled(units)
        layers += [nn.Linear(features, units), options.make_activation()]
        features = units
    layers.append(nn.Linear(features, info.num_classes))
    return nn.Sequential(*layers)
