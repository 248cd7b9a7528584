"""Reading a classifier's intermediate layers with forward hooks (no change to the model).

A layer is named as in `model.named_modules()` ("net.features.6"). Feature guidance (fgd)
reads one layer, by default the topmost convolutional one; the error-amplification
analysis reads every conv and linear layer in the order the forward pass runs them.
"""

from contextlib import contextmanager

import torch
from torch import nn

from robustbench_cli.errors import UserError

WEIGHT_LAYERS = (nn.Conv2d, nn.Linear)


def default_guide_layer(model: nn.Module) -> str:
    """The topmost Conv2d; for a model without one (an MLP), its last hidden layer: the
    module right before the last Linear."""
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]
    if names:
        return names[-1]
    modules = list(model.named_modules())
    last_linear = max((i for i, (_, m) in enumerate(modules) if isinstance(m, nn.Linear)), default=None)
    if last_linear is None or not any(isinstance(m, nn.Linear) for _, m in modules[:last_linear]):
        raise UserError("defense.guide=fgd needs a hidden layer: the classifier has no conv layer "
                        "and no hidden linear layer (set defense.guide_layer or use guide=lgd)")
    return modules[last_linear - 1][0]


def check_layer(model: nn.Module, name: str) -> str:
    modules = dict(model.named_modules())
    if not isinstance(name, str) or not name or name not in modules:
        known = [n for n, m in modules.items() if n and not list(m.children())]
        raise UserError(f"defense.guide_layer {name!r} is not a layer of the classifier; "
                        f"its layers: {', '.join(known[:40])}{' ...' if len(known) > 40 else ''}")
    return name


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
