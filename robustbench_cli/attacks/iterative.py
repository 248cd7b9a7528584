"""Iterative gradient attacks: BIM and iterative least-likely class (Kurakin et al. 2017),
PGD in the L-inf and L2 balls (Madry et al. 2018).

With early stopping each point leaves the active set at its first fooling iterate (true
class out of the top 1, or out of the top 5 when the evaluation reports top-5), which it
keeps; later steps compute only on points that are still unfooled.
Losses are summed per example, so a point's path does not depend on who else is active.
PGD's random start is drawn per point (see `Attack._random`), from the attack's seed, the
point's index and the restart, so it does not depend on the batch either.
"""

import math
from functools import partial

import torch

from robustbench_cli import checks
from robustbench_cli.attacks import params
from robustbench_cli.attacks.base import (
    Attack,
    cross_entropy,
    fooling_level,
    per_example_norm,
)
from robustbench_cli.errors import UserError


def kurakin_steps(eps: float) -> int:
    """min(eps + 4, 1.25 eps) iterations with eps on the 0-255 scale, rounded up."""
    eps_255 = round(eps * 255, 6)  # 8/255 * 255 must give 8, not 8.000000000000002
    return max(1, math.ceil(min(eps_255 + 4, 1.25 * eps_255)))


class IterativeAttack(Attack):
    """Steps of `step_size` from a start point, projected after each step; restarts keep the
    worst case: restart r + 1 runs only on points that survived every earlier restart."""

    restarts = 1
    iterative = True

    def __init__(self, model, *, eps, steps, step_size: float, early_stop):
        super().__init__(model, eps=eps)
        self.steps = checks.positive_int("steps", steps)
        self.step_size = step_size  # checked by the subclass, which knows how it was given
        if not checks.flag("early_stop", early_stop):
            self.stop_top_k = None

    def _targets(self, x, y) -> torch.Tensor:
        """The class each point's loss is about, fixed from the clean input."""
        return self._loss_labels(x, y)

    def _objective(self, logits, targets) -> torch.Tensor:
        """The quantity each step ascends."""
        return cross_entropy(logits, targets)

    def _start(self, x, rows, restart) -> torch.Tensor:
        """Where restart `restart` begins for the points x, which are `rows` of the call."""
        return x.clone()

    def _step(self, x_adv, grad) -> torch.Tensor:
        return x_adv + self.step_size * grad.sign()

    def _perturb(self, x, y):
        targets = self._targets(x, y)
        everyone = torch.arange(len(x), device=x.device)
        if self.restarts == 1:
            return self._descend(x, y, targets, everyone, 0)
        # Per point, how far the best restart so far got: 0 correct, 1 misclassified, 2 also
        # out of the stopping top-k. A restart reruns the points not yet done, and its iterate
        # replaces a point's only where it gets further, so a later restart never undoes a
        # fooling (it may, when the evaluation stops at top-5, leave a point top-1 correct).
        x_adv = x.clone()
        level = torch.zeros(len(x), dtype=torch.long, device=x.device)
        done = 2 if (self.stop_top_k or 1) > 1 else 1
        for restart in range(self.restarts):
            rows = everyone[level < done]
            if len(rows) == 0:
                break
            run = self._descend(x[rows], y[rows], targets[rows], rows, restart)
            with torch.no_grad():
                reached = fooling_level(self.model(run), y[rows], self.stop_top_k or 1)
            before = level[rows]
            self.stats[f"fooled_by_restart_{restart + 1}"] += int(((before == 0) & (reached > 0)).sum())
            take = (reached > before) | (before == 0)  # an unfooled point keeps the latest iterate
            x_adv[rows[take]], level[rows[take]] = run[take], reached[take]
        return x_adv

    def _descend(self, x, y, targets, rows, restart):
        x_adv = self._start(x, rows, restart)
        active = torch.arange(len(x), device=x.device)
        for _ in range(self.steps):
            logits, grad = self._input_gradient(
                x_adv[active], partial(self._objective, targets=targets[active])
            )
            if self.stop_top_k is not None:
                # Fooled is judged on the true label, also for label=pred and targeted
                # attacks: that is what robust accuracy counts.
                going_on = self._unfinished(logits, y[active])
                active, grad = active[going_on], grad[going_on]
                if len(active) == 0:
                    break
            x_adv[active] = self._project(x[active], self._step(x_adv[active], grad))
        return x_adv


class KurakinIterative(IterativeAttack):
    """Kurakin et al.'s schedule: no random start, step 1/255 (1 on the 0-255 scale) and
    min(eps + 4, 1.25 eps) steps unless `steps` is given."""

    def __init__(self, model, *, eps, steps=None, step_size=1 / 255, early_stop=True):
        if steps is None:
            steps = kurakin_steps(params.eps(eps, self.norm))
        super().__init__(model, eps=eps, steps=steps,
                         step_size=checks.positive_number("step_size", step_size),
                         early_stop=early_stop)


class BIM(KurakinIterative):
    """Basic iterative method: iterative FGSM."""

    name = "bim"

    def __init__(self, model, *, eps, label="true", steps=None, step_size=1 / 255,
                 early_stop=True):
        super().__init__(model, eps=eps, steps=steps, step_size=step_size,
                         early_stop=early_stop)
        self.label = params.label(label)


class IterLL(KurakinIterative):
    """Iterative least-likely class: steps toward the class the clean input finds least likely.

    It is targeted, but early stopping uses the untargeted test (any misclassification counts
    as fooled): robust accuracy only asks whether the label changed, and walking on toward
    y_ll after that costs gradient passes without lowering it.
    """

    name = "iter_ll"

    @torch.no_grad()
    def _targets(self, x, y):
        return self.model(x).argmin(1)

    def _objective(self, logits, targets):
        return -cross_entropy(logits, targets)


class PGDLinf(IterativeAttack):
    """Projected gradient descent with a random start in the L-inf ball.

    Each point's start is drawn from its own generator, seeded by (seed, the point's index,
    the restart): restarts start afresh, and the start never depends on the batch."""

    name = "pgd_linf"

    def __init__(self, model, *, eps, label="true", steps=10, step_size=None, step_ratio=0.25,
                 random_start=True, restarts=1, early_stop=True, seed=0):
        if step_size is None:
            ratio = checks.positive_number("step_ratio", step_ratio)
            step_size = ratio * params.eps(eps, self.norm)
        else:
            step_size = checks.positive_number("step_size", step_size)
        super().__init__(model, eps=eps, steps=steps, step_size=step_size, early_stop=early_stop)
        self.label = params.label(label)
        self.random_start = checks.flag("random_start", random_start)
        self.restarts = checks.positive_int("restarts", restarts)
        if self.restarts > 1 and not self.random_start:
            raise UserError("restarts > 1 needs random_start=true, or they all repeat")
        self._count_restarts(self.restarts)
        self.seed = checks.non_negative_int("seed", seed)

    def _start(self, x, rows, restart):
        if not self.random_start:
            return x.clone()
        return self._project(x, x + self._random_offset(x, rows, restart))

    def _random_offset(self, x, rows, restart) -> torch.Tensor:
        """Uniform in the L-inf ball; drawn on CPU generators so any device gets the same."""
        noise = self._random(x.shape[1:], "start", restart, rows=rows, dtype=x.dtype)
        return ((2 * noise - 1) * self.eps).to(x.device)


class PGDL2(PGDLinf):
    """PGD in the L2 ball: random start uniform in the ball, steps along the L2-normalised
    gradient, projection by rescaling."""

    name = "pgd_l2"
    norm = "l2"

    def _random_offset(self, x, rows, restart):
        direction = self._random(x.shape[1:], "start", restart, "direction", rows=rows,
                                 kind="randn", dtype=x.dtype)
        direction = direction / per_example_norm(direction, 2)
        # Radius eps * u^(1/d) makes the point uniform in the d-dimensional ball's volume.
        u = self._random((1,) * (x.dim() - 1), "start", restart, "radius", rows=rows,
                         dtype=x.dtype)
        return (direction * self.eps * u ** (1 / x[0].numel())).to(x.device)

    def _step(self, x_adv, grad):
        return x_adv + self.step_size * grad / per_example_norm(grad, 2).clamp_min(1e-12)
