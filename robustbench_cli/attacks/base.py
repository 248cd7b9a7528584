"""The Attack interface and the protocol every attack shares.

An attack sees the model only through `__call__`, which puts the model in eval mode with
frozen parameters, takes gradients with respect to the input alone (or, for an attack that
only reads outputs, runs with autograd off), and returns a detached batch clamped to [0, 1]
and projected into the eps-ball. Subclasses implement `_perturb`.

Randomness is seeded per point. `attack(x, y, index=...)` takes each point's index in the
evaluated dataset, and every random draw an attack makes goes through `_random`, which seeds
one generator per point from (the attack's `seed`, the point's index, the draw's stream
name) and draws that point's values alone. A point's random start, target class or noise
therefore depends on nothing else in the batch: not the batch size, the batch order, which
other points are still active, or how the test set is sharded over processes.

Adaptive attacks (Athalye et al. 2018) against randomized or preprocessing defenses: every
attack takes `eot_samples` and `bpda` (see `Attack.adapt`; one that only reads outputs
refuses them). They act in `_input_gradient` and `__call__`, so an attack that takes its
gradients through `_input_gradient` gets both without a line of its own.
"""

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import contextmanager, nullcontext

import torch
import torch.nn.functional as F

from robustbench_cli import checks
from robustbench_cli.attacks import params
from robustbench_cli.attacks.bpda import non_differentiable, straight_through
from robustbench_cli.errors import UserError
from robustbench_cli.models.precision import FP16_LOSS_SCALE, float16_autocast


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


def point_seed(seed: int, stream: str, index: int) -> int:
    """The generator seed of one point's draws in one stream: the first 63 bits of
    BLAKE2b("{seed}|{stream}|{index}"), stable across processes, platforms and versions."""
    digest = hashlib.blake2b(f"{seed}|{stream}|{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def per_example_norm(t: torch.Tensor, p: float) -> torch.Tensor:
    """Norm of each example, shaped to broadcast against the batch."""
    return per_point(t.flatten(1).norm(p=p, dim=1), t)


def per_point(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """One value per point, shaped to broadcast against the batch `like`."""
    return values.view(-1, *([1] * (like.dim() - 1)))


class Attack(ABC):
    """`attack(x, y, index=None) -> x_adv`: same shape, in [0, 1], inside the eps-ball, x
    untouched.

    `index` numbers the points (their indices in the evaluated dataset: the evaluation runner
    passes them), so that an attack with randomness gives each point the draws of its own
    (seed, index) whatever batch it is in. Without it the points are numbered on from the
    previous call that had no index: 0..len(x)-1 for a new attack, so `build(...)(x, y)` is
    deterministic, and an attack object reused over many batches (adversarial training, for
    one) still gets fresh draws for every batch.
    """

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
    seed = 0  # attacks that draw random numbers take it as a parameter
    eot_samples = 1  # passes averaged into each gradient (EOT); set by `adapt`
    bpda = False  # differentiate non-differentiable preprocessing as the identity; set by `adapt`

    def __init__(self, model: torch.nn.Module, *, eps):
        self.model = model
        self.eps = params.eps(eps, self.norm)
        self.stats = dict.fromkeys(self.stat_names, 0)
        self.index: torch.Tensor | None = None  # the points of the current (or last) call
        self._next_index = 0  # where numbering goes on for a call without an index
        self._generators: dict[torch.device, torch.Generator] = {}

    def _count_restarts(self, restarts: int) -> None:
        """With several random restarts, count per restart the points it was the first to
        fool (`fooled_by_restart_<r>`, from 1): AutoAttack's check that restarts agree."""
        if restarts > 1:
            self.stat_names = (*type(self).stat_names,
                               *(f"fooled_by_restart_{r + 1}" for r in range(restarts)))
            self.stats = dict.fromkeys(self.stat_names, 0)

    def adapt(self, *, eot_samples=None, bpda=None) -> "Attack":
        """Adapts the attack to a randomized or preprocessing defense (Athalye et al. 2018);
        `build` hands every attack these two parameters (null: off).

        eot_samples (EOT, Expectation over Transformation): each gradient, and the logits
        that come with it, is the mean over this many forward/backward passes, each drawing
        the model's randomness anew. bpda (BPDA): while the attack runs, the model's
        non-differentiable preprocessing (see attacks.bpda) passes gradients straight through.
        An attack that only reads outputs refuses both, as does bpda on a model with nothing
        to pass through: either would silently change nothing.
        """
        self.eot_samples = checks.optional(checks.positive_int)("eot_samples", eot_samples) or 1
        self.bpda = bool(checks.optional(checks.flag)("bpda", bpda))
        if not self.uses_gradients and (self.eot_samples > 1 or self.bpda):
            raise UserError("eot_samples and bpda shape the gradients an attack takes; this "
                            "attack takes none (it only reads the model's outputs)")
        if self.bpda and not non_differentiable(self.model):
            raise UserError("bpda=true differentiates through a non-differentiable preprocessing, "
                            "and the model has none (defense=bit_depth has one)")
        return self

    def __call__(self, x: torch.Tensor, y: torch.Tensor,
                 index: torch.Tensor | None = None) -> torch.Tensor:
        self.stats = dict.fromkeys(self.stat_names, 0)
        self.index = self._point_indices(index, len(x))
        if self.eps == 0:
            return x.detach().clone()
        # Lightning evaluates under inference mode; a gradient attack needs autograd whatever
        # the caller, and an output-only attack must not record a graph through the model.
        grad_mode = torch.enable_grad() if self.uses_gradients else torch.no_grad()
        bpda = straight_through(self.model) if self.bpda else nullcontext()
        with torch.inference_mode(False), grad_mode, frozen_eval(self.model), bpda:
            x, y = x.detach().clone(), y.detach().clone()  # clone: inference tensors -> normal
            x_adv = self._project(x, self._perturb(x, y))
        return x_adv.detach()

    def _point_indices(self, index, count: int) -> torch.Tensor:
        """The call's point indices as a CPU LongTensor, checked (or numbered on)."""
        if index is None:
            start, self._next_index = self._next_index, self._next_index + count
            return torch.arange(start, start + count)
        index = torch.as_tensor(index).detach().cpu()
        if index.shape != (count,) or index.is_floating_point() or index.is_complex():
            raise ValueError(f"index must hold one integer per point ({count}), got "
                             f"{index.dtype} of shape {tuple(index.shape)}")
        return index.long()

    def _random(self, shape, *stream, rows=None, kind: str | Callable = "rand", low: int = 0,
                high: int | None = None, dtype: torch.dtype | None = None, device=None,
                portable: bool = True) -> torch.Tensor:
        """Random values of `shape` for each point, shaped (points, *shape): every point's
        from its own generator, seeded with `point_seed(self.seed, stream, index)`.

        `stream` names the draw (e.g. "start", restart): a different name gives independent
        values, the same name the same values, so an attack names each draw it makes for a
        point once (per restart, per iteration, ...). `rows` picks points of the current call
        (positions in its batch, as the attack's active subsets hold them; None: all).
        `kind`: "rand" (uniform [0, 1)), "randn" (standard normal), "randint" ([low, high)),
        or fill(tensor, generator) filling one point's tensor in place.

        `portable` draws on a CPU generator, so any device gets the same values; otherwise
        the draw happens on `device` with a generator of that device (no host transfer, for
        attacks that draw a lot), which repeats only on the same kind of device. Either way
        the result is on `device` (default: the CPU).
        """
        if self.index is None:
            raise RuntimeError("_random draws for the points of a call: use it in _perturb")
        index = self.index if rows is None else self.index[torch.as_tensor(rows).cpu()]
        shape = tuple(shape)
        device = torch.device("cpu" if device is None else device)
        where = torch.device("cpu") if portable else device
        if dtype is None:
            dtype = torch.long if kind == "randint" else torch.get_default_dtype()
        generator = self._generators.get(where)
        if generator is None:
            generator = self._generators[where] = torch.Generator(where)
        values = torch.empty((len(index), *shape), dtype=dtype, device=where)
        name = "/".join(map(str, stream))
        for row, point in enumerate(index.tolist()):
            generator.manual_seed(point_seed(self.seed, name, point))
            if kind == "rand":
                values[row].uniform_(generator=generator)
            elif kind == "randn":
                values[row].normal_(generator=generator)
            elif kind == "randint":
                values[row].random_(low, high, generator=generator)
            elif callable(kind):
                kind(values[row], generator)
            else:
                raise ValueError(f"unknown kind of random values {kind!r}")
        return values.to(device)

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
        """The attack itself, on a batch already detached; `__call__` projects the result.
        `self.index` holds the batch's point indices; random draws go through `_random`."""

    def _project(self, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        """Into the eps-ball around x (for "linf" and "l2"), then into [0, 1] (which only moves
        points toward x)."""
        if self.norm == "l2":
            x_adv = x + (x_adv - x).renorm(p=2, dim=0, maxnorm=self.eps)
        elif self.norm == "linf":
            x_adv = torch.minimum(torch.maximum(x_adv, x - self.eps), x + self.eps)
        return x_adv.clamp(0, 1)

    def _input_gradient(self, x: torch.Tensor, objective) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits at x and the gradient of objective(logits) (summed over examples) w.r.t. x;
        with EOT, the means of both over `eot_samples` passes (each one counted)."""
        x = x.detach().requires_grad_(True)
        logits_sum, grad_sum = 0, 0
        for _ in range(self.eot_samples):
            logits, grad = self._scaled_gradient(x, objective)
            logits_sum, grad_sum = logits_sum + logits.detach().float(), grad_sum + grad
        self.stats["gradient_passes"] += self.eot_samples * len(x)
        return logits_sum / self.eot_samples, grad_sum / self.eot_samples

    def _scaled_gradient(self, x: torch.Tensor, objective) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward/backward pass. Under float16 autocast the loss is scaled up before the
        backward pass, so small gradients do not flush to zero in float16 (a masked gradient),
        and the gradient scaled back in float32; a scale that overflows is halved and the
        pass redone."""
        scale = FP16_LOSS_SCALE if float16_autocast(x.device) else 1.0
        while True:
            logits = self.model(x)
            (grad,) = torch.autograd.grad(objective(logits) * scale, x)
            if scale == 1.0 or torch.isfinite(grad).all():
                return logits, grad / scale
            scale /= 2

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


def fooling_level(logits: torch.Tensor, y: torch.Tensor, top_k: int) -> torch.Tensor:
    """Per point, how far an attack got: 0 correct, 1 misclassified, 2 also out of the top
    `top_k` (only when top_k > 1, where early stopping waits for that)."""
    level = (~in_top_k(logits, y, 1)).long()
    if top_k > 1:
        level += ~in_top_k(logits, y, top_k)
    return level


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Summed, not averaged, so each example's gradient does not depend on the batch size."""
    return F.cross_entropy(logits, target, reduction="sum")


class LabelledAttack(Attack):
    """A one-step attack whose only parameter besides eps is `label` (true or pred)."""

    def __init__(self, model, *, eps, label="true"):
        super().__init__(model, eps=eps)
        self.label = params.label(label)
