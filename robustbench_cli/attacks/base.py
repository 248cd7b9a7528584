"""The Attack interface and the protocol every attack shares.

An attack sees the model only through `__call__`, which puts the model in eval mode with
frozen parameters, takes gradients with respect to the input alone (or, for an attack that
only reads outputs, runs with autograd off), and returns a detached batch clamped to [0, 1]
and projected into the eps-ball. Subclasses implement `_perturb`.
"""

from abc import ABC, abstractmethod
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from robustbench_cli.attacks import params


@contextmanager
def frozen_eval(model: torch.nn.Module):
    """Eval mode (BatchNorm uses, never updates, its statistics) and parameters that need no
    gradient, so an attack leaves `.grad` alone; every module's mode and flag come back after."""
    modes = [(module, module.training) for module in model.modules()]
    grad_flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in grad_flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in grad_flags:
            p.requires_grad_(flag)
        for module, training in modes:
            module.training = training


def per_example_norm(t: torch.Tensor, p: float) -> torch.Tensor:
    """Norm of each example, shaped to broadcast against the batch."""
    return t.flatten(1).norm(p=p, dim=1).view(-1, *([1] * (t.dim() - 1)))


class Attack(ABC):
    """`attack(x, y) -> x_adv`: same shape, in [0, 1], inside the eps-ball, x untouched."""

    name: str
    # "linf" or "l2": projected into that eps-ball; "l0": the attack counts its changed
    # features itself; None: no ball (noise, or no perturbation), only [0, 1].
    norm: str | None = "linf"
    label = "true"  # which labels a loss uses, for attacks that take the `label` param
    uses_gradients = True  # False: the attack only reads outputs, and runs without autograd
    iterative = False  # True: steps toward the boundary, so an unbounded budget must reach it
    stat_names = ("gradient_passes",)  # counters in `stats`, reset by every call
    # Early stopping (attacks that iterate): a point leaves once its true class is outside
    # its top `stop_top_k` classes (1: misclassified) and keeps that iterate; None runs every
    # iteration. The evaluation protocol sets it with `stop_at`.
    stop_top_k: int | None = 1

    def __init__(self, model: torch.nn.Module, *, eps):
        self.model = model
        self.eps = params.eps(eps, self.norm)
        self.stats = dict.fromkeys(self.stat_names, 0)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.stats = dict.fromkeys(self.stat_names, 0)
        if self.eps == 0:
            return x.detach().clone()
        # Lightning evaluates under inference mode; a gradient attack needs autograd whatever
        # the caller, and an output-only attack must not record a graph through the model.
        grad_mode = torch.enable_grad() if self.uses_gradients else torch.no_grad()
        with torch.inference_mode(False), grad_mode, frozen_eval(self.model):
            x, y = x.detach().clone(), y.detach().clone()  # clone: inference tensors -> normal
            x_adv = self._project(x, self._perturb(x, y))
        return x_adv.detach()

    def stop_at(self, top_k: int | None) -> None:
        """Stop a point once its true class leaves its top `top_k` (None: never), unless the
        attack was configured not to stop early at all."""
        if self.stop_top_k is not None:
            self.stop_top_k = top_k

    def _unfinished(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per point: must the attack go on (its true class is still in the stopping top-k)?"""
        if self.stop_top_k is None:
            return torch.ones_like(y, dtype=torch.bool)
        return in_top_k(logits, y, self.stop_top_k)

    @abstractmethod
    def _perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The attack itself, on a batch already detached; `__call__` projects the result."""

    def _project(self, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        """Into the eps-ball around x (for "linf" and "l2"), then into [0, 1] (which only moves
        points toward x)."""
        if self.norm == "l2":
            x_adv = x + (x_adv - x).renorm(p=2, dim=0, maxnorm=self.eps)
        elif self.norm == "linf":
            x_adv = torch.minimum(torch.maximum(x_adv, x - self.eps), x + self.eps)
        return x_adv.clamp(0, 1)

    def _input_gradient(self, x: torch.Tensor, objective) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits at x and the gradient of objective(logits) (summed over examples) w.r.t. x."""
        x = x.detach().requires_grad_(True)
        logits = self.model(x)
        (grad,) = torch.autograd.grad(objective(logits), x)
        self.stats["gradient_passes"] += len(x)
        return logits.detach(), grad

    @torch.no_grad()
    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).argmax(1)

    def _loss_labels(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The true labels or, against label leaking (Kurakin et al. 2017), the model's clean
        prediction."""
        return self._predict(x) if self.label == "pred" else y


def in_top_k(logits: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """Per point: is the true class among the k largest logits (k capped at the classes)?"""
    k = min(k, logits.shape[1])
    return (logits.topk(k, dim=1).indices == y[:, None]).any(dim=1)


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Summed, not averaged, so each example's gradient does not depend on the batch size."""
    return F.cross_entropy(logits, target, reduction="sum")


class LabelledAttack(Attack):
    """A one-step attack whose only parameter besides eps is `label` (true or pred)."""

    def __init__(self, model, *, eps, label="true"):
        super().__init__(model, eps=eps)
        self.label = params.label(label)
