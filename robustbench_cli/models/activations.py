"""The activations a model config can choose (`model.activation`)."""

from collections.abc import Callable

import torch
from torch import nn

ACTIVATION_NAMES = ("relu", "relu6", "relu_decay", "tanh", "elu")


class ReluDecay(nn.Module):
    """relu(x) / (1 + beta * relu(x)^2): ReLU near zero, decaying back to 0 for large inputs."""

    def __init__(self, beta: float = 1.0):
        super().__init__()
        self.beta = beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        positive = torch.relu(x)
        return positive / (1 + self.beta * positive * positive)

    def extra_repr(self) -> str:
        return f"beta={self.beta}"


def activation_factory(name: str, beta: float) -> Callable[[], nn.Module]:
    """A constructor for a fresh activation layer; `name` must be in ACTIVATION_NAMES."""
    simple = {"relu": nn.ReLU, "relu6": nn.ReLU6, "tanh": nn.Tanh, "elu": nn.ELU}
    if name == "relu_decay":
        return lambda: ReluDecay(beta)
    return simple[name]
