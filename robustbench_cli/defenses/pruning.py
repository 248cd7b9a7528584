"""Pruning by smallest mean activated value.

A weight's score is the mean over the training data of |weight x its input activation|,
i.e. |w_ij| * mean|a_j| for a linear layer (for a convolution, |w[o, i, :, :]| times the
mean |activation| of input channel i over data and positions). In each chosen layer the
requested fraction of weights with the lowest scores is set to zero; a callback re-zeroes
them after every optimizer step of fine-tuning, so the saved checkpoint is a plain model
whose zeros stay zero (torch.nn.utils.prune would store weight_orig/weight_mask instead,
which a plain model cannot load).
"""

import torch
from pytorch_lightning.callbacks import Callback
from torch import nn

from robustbench_cli.errors import UserError

PRUNABLE = (nn.Linear, nn.Conv2d)


def chosen_layers(model: nn.Module, names) -> dict[str, nn.Module]:
    """The named layers (default: every linear layer), checked to exist and be prunable."""
    modules = dict(model.named_modules())
    if names is None:
        layers = {name: m for name, m in modules.items() if isinstance(m, nn.Linear)}
    else:
        unknown = [name for name in names if name not in modules]
        if unknown:
            prunable = [n for n, m in modules.items() if isinstance(m, PRUNABLE)]
            raise UserError(f"defense.layers: no layer {unknown[0]!r}; prunable: {', '.join(prunable)}")
        layers = {name: modules[name] for name in names}
        wrong = [name for name, m in layers.items() if not isinstance(m, PRUNABLE)]
        if wrong:
            raise UserError(f"defense.layers: {wrong[0]!r} is not a linear or conv layer")
    if not layers:
        raise UserError("defense=prune: the model has no layer to prune")
    return layers


@torch.no_grad()
def mean_input_activation(model: nn.Module, layers: dict[str, nn.Module], loader) -> dict[str, torch.Tensor]:
    """Mean |input| per input feature (linear) or input channel (conv) of each layer."""
    sums = {name: 0.0 for name in layers}
    count = 0

    def hook(name):
        def record(module, inputs, output):
            a = inputs[0].abs()
            a = a.flatten(1) if isinstance(module, nn.Linear) else a.mean(dim=(2, 3))
            sums[name] = sums[name] + a.sum(0)
        return record

    handles = [layer.register_forward_hook(hook(name)) for name, layer in layers.items()]
    was_training = model.training
    model.eval()
    try:
        for x, _ in loader:
            model(x)
            count += len(x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return {name: total / count for name, total in sums.items()}


def scores(layer: nn.Module, mean_activation: torch.Tensor) -> torch.Tensor:
    """|weight x mean input activation| for every weight of the layer."""
    shape = (1, -1) if isinstance(layer, nn.Linear) else (1, -1, 1, 1)
    return (layer.weight.detach().abs() * mean_activation.view(shape)).abs()


def lowest_fraction_mask(score: torch.Tensor, ratio: float) -> torch.Tensor:
    """1 where a weight stays, 0 for exactly round(ratio * n) weights of lowest score."""
    n_pruned = round(ratio * score.numel())
    mask = torch.ones(score.numel())
    mask[score.flatten().argsort()[:n_pruned]] = 0
    return mask.view_as(score)


def prune(model: nn.Module, layer_names, ratio: float, loader) -> dict[str, torch.Tensor]:
    """Zero the lowest-scoring fraction of weights in each chosen layer; returns the masks."""
    layers = chosen_layers(model, layer_names)
    activation = mean_input_activation(model, layers, loader)
    masks = {}
    for name, layer in layers.items():
        masks[name] = lowest_fraction_mask(scores(layer, activation[name]), ratio)
        with torch.no_grad():
            layer.weight.mul_(masks[name])
    return masks


class KeepPruned(Callback):
    """Re-applies the pruning masks after every optimizer step of fine-tuning."""

    def __init__(self, masks: dict[str, torch.Tensor]):
        self.masks = masks

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        modules = dict(pl_module.model.named_modules())
        with torch.no_grad():
            for name, mask in self.masks.items():
                weight = modules[name].weight
                weight.mul_(mask.to(weight.device))
