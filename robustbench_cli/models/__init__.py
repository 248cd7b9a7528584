"""Classifier architectures: plain nn.Modules taking [0, 1] images and returning logits.

Importing this package is cheap (no torch); `build_model` imports the builders on first use.
"""

MODEL_NAMES = ("mlp", "cnn", "vgg11", "vgg13", "vgg16", "vgg19", "inception_v3")


def build_model(cfg, info):
    """Build the `cfg.name` classifier for a dataset described by `info`.

    `cfg` is the `model` config node (DictConfig or dict); `info` has `channels, height,
    width, num_classes, mean, std`. Returns a `Classifier` (normalisation + network) in
    train mode; bad options raise `UserError`.
    """
    from robustbench_cli.models.factory import build_model as _build

    return _build(cfg, info)
