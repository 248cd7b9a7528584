"""Reading a classifier's intermediate layers with forward hooks (no change to the model).

A layer is named as in `model.named_modules()` ("net.features.6"). Feature guidance (fgd)
reads one layer, by default the topmost feature map named by the classifier's model config
(`guide_layer`); the error-amplification
analysis reads every conv and linear layer in the order the forward pass runs them.
"""

from contextlib import contextmanager

import torch
from torch import nn

from robustbench_cli.errors import UserError
from robustbench_cli.models.classifier import resolve_layer

WEIGHT_LAYERS = (nn.Conv2d, nn.Linear)


def default_guide_layer(model: nn.Module) -> str:
    """The classifier's topmost feature map, as its model config names it (`guide_layer` in
    conf/model/*.yaml, recorded in the classifier's checkpoint): Liao et al. (document 002,
    Section 3.2) guide FGD by "the topmost convolutional layer", the input of global pooling.
    mlp: the last hidden layer; cnn, vgg*: the output of `features`; inception_v3: Mixed_7c."""
    name = getattr(model, "guide_layer", None)
    if name is None:
        raise UserError("defense.guide=fgd: the classifier's model config names no guide_layer; "
                        "set defense.guide_layer=LAYER or use guide=lgd")
    module = dict(model.named_modules())[name]
    if isinstance(module, nn.Flatten) and name.count(".") == 1 and name.endswith(".0"):
        raise UserError("defense.guide=fgd needs a hidden layer: the classifier has none (an MLP "
                        "with hidden: []); set defense.guide_layer or use guide=lgd")
    return name


def check_layer(model: nn.Module, name: str) -> str:
    """`name` (a named_modules() name; a negative index counts from the end of its parent's
    layers, e.g. net.-2) resolved to the layer's full name."""
    resolved = resolve_layer(model, name)
    if resolved is None:
        modules = dict(model.named_modules())
        known = [n for n, m in modules.items() if n and not list(m.children())]
        raise UserError(f"defense.guide_layer {name!r} is not a layer of the classifier; "
                        f"its layers: {', '.join(known[:40])}{' ...' if len(known) > 40 else ''}")
    return resolved


def weight_layers(model: nn.Module) -> list[str]:
    """Names of the conv and linear layers (registration order; see `layer_outputs`)."""
    return [name for name, module in model.named_modules() if isinstance(module, WEIGHT_LAYERS)]


@contextmanager
def tapped(model: nn.Module, names):
    """Inside the block, every forward pass fills the yielded dict {name: output} (the last
    call of each layer), in the order the layers ran."""
    modules = dict(model.named_modules())
    outputs: dict[str, torch.Tensor] = {}

    def keep(name):
        def hook(module, inputs, output):
            outputs.pop(name, None)  # re-insert: dict order = the order layers ran
            outputs[name] = output
        return hook

    handles = [modules[name].register_forward_hook(keep(name)) for name in names]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


def layer_outputs(model: nn.Module, names, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """{name: output} of one forward pass, in the order the layers ran."""
    with tapped(model, names) as outputs:
        model(x)
    return dict(outputs)
