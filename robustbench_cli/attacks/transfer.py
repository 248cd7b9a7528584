"""Transfer attack: adversarial examples crafted on source models, evaluated on the target.

The target model is never differentiated; it runs once per input shape, to check that the
sources predict the same number of classes. Several source checkpoints form an ensemble
whose logits are averaged: examples that fool several models at once transfer better.
"""

import inspect

import torch
from torch import nn

from robustbench_cli import attacks, checks
from robustbench_cli.attacks.base import Attack
from robustbench_cli.checkpoints import load_classifier
from robustbench_cli.errors import UserError


class LogitEnsemble(nn.Module):
    """The mean of its members' logits."""

    def __init__(self, members):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x):
        return torch.stack([member(x) for member in self.members]).mean(0)


class Transfer(Attack):
    """Runs `source_attack` (with `source_params`) against the source checkpoint(s) and hands
    its output to the target; eps and norm are the source attack's.

    Unless `source_params` sets it, the source attack runs with early_stop=false: stopping
    once the source is fooled leaves points just across the source's boundary, which
    transfer worse than the full run. `stats` are the source attack's, prefixed "source_".
    The source attack gets the call's point indices, so its randomness (a PGD start, say,
    seeded by its own `seed` in `source_params`) is per point as everywhere else.
    """

    name = "transfer"
    uses_gradients = False

    def __init__(self, model, *, eps, source_ckpt=None, source_attack="pgd_linf",
                 source_params=None):
        if source_ckpt is None:
            raise UserError("source_ckpt is required: a checkpoint path or a list of paths")
        self.source_paths = checks.checkpoint_paths("source_ckpt", source_ckpt)
        if source_attack == self.name:
            raise UserError("source_attack cannot be transfer itself")
        source_params = {} if source_params is None else source_params
        if not isinstance(source_params, dict):
            raise UserError(f"source_params must be a mapping of the source attack's "
                            f"parameters, got {source_params!r}")
        if "eps" in source_params:
            raise UserError("source_params cannot set eps: the transfer attack's eps is used")
        source_class = attacks.attack_class(source_attack)
        if "early_stop" in inspect.signature(source_class).parameters:
            source_params = {"early_stop": False, **source_params}
        self.sources = LogitEnsemble([load_classifier(path) for path in self.source_paths])
        self.source = attacks.build(source_attack, self.sources, eps=eps, **source_params)
        self.norm = self.source.norm
        super().__init__(model, eps=eps)
        self._checked_shape = None

    def _perturb(self, x, y):
        self.sources.to(x.device)
        if x.shape[1:] != self._checked_shape:
            self._check_sources_fit(x)
            self._checked_shape = x.shape[1:]
        x_adv = self.source(x, y, index=self.index)  # the same points: the same draws
        self.stats.update({f"source_{key}": value for key, value in self.source.stats.items()})
        return x_adv

    @torch.no_grad()
    def _check_sources_fit(self, x):
        classes = self.model(x[:1]).shape[1]
        for path, member in zip(self.source_paths, self.sources.members):
            try:
                source_classes = member(x[:1]).shape[1]
            except RuntimeError as error:
                raise UserError(f"source model {path} does not take inputs of shape "
                                f"{tuple(x.shape[1:])}: {str(error).splitlines()[0]}") from None
            if source_classes != classes:
                raise UserError(f"source model {path} predicts {source_classes} classes, the "
                                f"target model {classes}")
