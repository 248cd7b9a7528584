"""BPDA, Backward Pass Differentiable Approximation (Athalye, Carlini & Wagner 2018): an
attack differentiates through a non-differentiable preprocessing g (quantisation, say) as if
it were the identity, since g(x) ~ x, while the forward pass keeps computing g(x) exactly.

A preprocessing that needs it subclasses `NonDifferentiable`. The attack owns the choice
(`attack.bpda=true`): while such an attack runs, `straight_through` switches every
`NonDifferentiable` module of its model to the identity backward pass, and switches it back
afterwards, so other attacks and the evaluation of the same model are untouched.
"""

from abc import ABC, abstractmethod
from contextlib import contextmanager

import torch
from torch import nn


class NonDifferentiable(nn.Module, ABC):
    """A preprocessing `transform` whose own gradient is useless (zero almost everywhere).
    Forward is always transform(x); backward is transform's unless `straight_through` is on,
    then the identity."""

    straight_through = False

    @abstractmethod
    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """The preprocessing itself (what the forward pass computes)."""

    def forward(self, x):
        if self.straight_through:
            return _IdentityBackward.apply(x, self.transform(x.detach()))
        return self.transform(x)


class _IdentityBackward(torch.autograd.Function):
    """Returns `out` (exactly, unlike x + (out - x).detach()), and hands the gradient to x."""

    @staticmethod
    def forward(ctx, x, out):
        return out.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def non_differentiable(model: nn.Module) -> list[NonDifferentiable]:
    return [module for module in model.modules() if isinstance(module, NonDifferentiable)]


@contextmanager
def straight_through(model: nn.Module):
    """Every NonDifferentiable module of `model` differentiates as the identity, until exit."""
    switches = [(module, module.straight_through) for module in non_differentiable(model)]
    for module, _ in switches:
        module.straight_through = True
    try:
        yield
    finally:
        for module, previous in switches:
            module.straight_through = previous
