"""The activations a model config can choose (`model.activation`).

relu6 and relu_decay are those of Kurakin et al. 2017 (document 004), Appendix D / Table 7:
relu6(x) = min(relu(x), 6) and ReluDecay_beta(x) = relu(x) / (1 + beta * relu(x)^2) with
beta in {0.1, 0.01, 0.001}. The default beta is 0.1, the value whose Table 7 row differs
from relu (more robust to iter. l.l., less accurate clean); 0.01 and 0.001 behave like relu.
"""

from collections.abc import Callable

import torch
from torch import nn

ACTIVATION_NAMES = ("relu", "relu6", "relu_decay", "tanh", "elu")
PAPER_BETAS = (0.1, 0.01, 0.001)  # document 004, Table 7
DEFAULT_BETA = 0.1


class ReluDecay(nn.Module):
    """ReluDecay_beta(x) = relu(x) / (1 + beta * relu(x)^2) (document 004, Appendix D):
    ReLU near zero, peaking at x = 1/sqrt(beta) and decaying back to 0 for large inputs."""

    def __init__(self, beta: float = DEFAULT_BETA):
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
