"""APGD, Auto-PGD (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an
ensemble of diverse parameter-free attacks"): PGD with momentum and a step size that each
point adapts on its own, in the L-inf or the L2 ball.

As in the paper: the step size starts at 2 eps; a step goes to z = P(x_k + eta * d), d the
gradient's sign (L-inf) or the gradient over its L2 norm (L2), then to
x_{k+1} = P(x_k + alpha (z - x_k) + (1 - alpha)(x_k - x_{k-1})) (alpha = 1 for the first
step); at the checkpoints w_j = ceil(p_j * steps), p_0 = 0, p_1 = 0.22,
p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), a point halves its step size and goes back
to its best-loss iterate when (1) fewer than rho of its steps since the last checkpoint
raised the loss, or (2) its step size was not halved at the last checkpoint and its best
loss has not risen since. Losses are cross-entropy or DLR, -(z_y - max_{i != y} z_i) /
(z_pi1 - z_pi3), which does not change when the logits are shifted or scaled. APGD-T
(`target_classes` = k > 0) runs the targeted DLR loss -(z_y - z_t) / (z_pi1 - (z_pi3 +
z_pi4) / 2) once for each of the k classes the clean input finds most likely after y.

Our choices where the paper leaves room:
- `steps` counts gradient passes per point and run (the paper's N_iter): x_0 ... x_{steps-1}
  are differentiated, the last iterate x_steps only classified (a forward pass, not counted).
- Going back to the best iterate reuses the gradient stored with it, as the authors' code
  does, so a halving costs no pass.
- Condition 2 is tested at the first checkpoint too, against the loss at the start, as the
  paper states it (the authors' code skips it there).
- The random start is uniform in the L-inf ball (as our PGD's) or on the L2 sphere of radius
  eps (as the authors' code), drawn per point from (seed, the point's index, the target and
  restart): see `Attack._random`.
- A point's result is the first iterate that fooled it, else its best-loss iterate over all
  its runs: robust accuracy asks for any fooling iterate. Under top-5 early stopping (`stop_at(5)`) the first
  iterate that put y out of the top 5 beats the first merely misclassified one. With
  `early_stop` a point stops at its stopping iterate; later restarts and targets run only
  on the points not yet stopped (without it: not yet misclassified), as in the authors' code.
Every quantity is per point (losses summed over examples, per-point step sizes and
checkpoint tests), so a point's result does not depend on the rest of its batch.
"""

from functools import partial
from typing import NamedTuple

import torch
import torch.nn.functional as F

from robustbench_cli import checks
from robustbench_cli.attacks.base import Attack, per_example_norm, per_point
from robustbench_cli.attacks.params import NORMS
from robustbench_cli.errors import UserError

LOSSES = ("ce", "dlr")
# Levels of a point's result: fooled (misclassified), and out of the stopping top-k.
CORRECT, MISCLASSIFIED, STOPPED = 0, 1, 2


def checkpoints(steps: int) -> list[int]:
    """The iterations w_j (0 included, below `steps`) where step sizes are reviewed. The p_j
    are kept in hundredths, as integers: in floats 0.22 + 0.19 is 0.41000000000000003, whose
    ceil(p * 100) would be 42."""
    marks, previous, current = [0], 0, 22
    while current < 100:
        mark = -(-current * steps // 100)
        if marks[-1] < mark < steps:  # a short run rounds some checkpoints together
            marks.append(mark)
        previous, current = current, current + max(current - previous - 3, 6)
    return marks


def true_logit(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return logits.gather(1, y[:, None]).squeeze(1)


def dlr(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per example, -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12)."""
    ordered = logits.sort(dim=1, descending=True).values
    best_other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    return -(true_logit(logits, y) - best_other) / (ordered[:, 0] - ordered[:, 2] + 1e-12)


def targeted_dlr(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per example, -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12)."""
    ordered = logits.sort(dim=1, descending=True).values
    scale = ordered[:, 0] - (ordered[:, 2] + ordered[:, 3]) / 2 + 1e-12
    return -(true_logit(logits, y) - true_logit(logits, target)) / scale


class Run(NamedTuple):
    """One run's outcome per point: `fooled`, its first iterate of the highest `level` it
    reached, and `best`, its best-loss iterate, with that loss."""

    fooled: torch.Tensor
    level: torch.Tensor
    best: torch.Tensor
    best_loss: torch.Tensor


class APGD(Attack):
    """APGD-CE, APGD-DLR or (target_classes > 0) APGD-T; see the module docstring.

    After a call, `step_sizes` holds each point's step size at the end of its last run, and
    `stats["step_halvings"]` counts the halvings of all points.
    """

    name = "apgd"
    iterative = True
    stat_names = ("gradient_passes", "step_halvings")

    def __init__(self, model, *, eps, norm="linf", loss="ce", target_classes=0, steps=100,
                 restarts=1, rho=0.75, alpha=0.75, early_stop=True, seed=0):
        self.norm = checks.choice("norm", norm, NORMS)  # before eps, whose bound depends on it
        super().__init__(model, eps=eps)
        self.loss = checks.choice("loss", loss, LOSSES)
        self.target_classes = checks.non_negative_int("target_classes", target_classes)
        if self.target_classes and self.loss != "dlr":
            raise UserError("target_classes > 0 runs APGD-T, whose loss is the targeted DLR "
                            "loss: set loss=dlr (or target_classes=0)")
        self.steps = checks.positive_int("steps", steps)
        self.restarts = checks.positive_int("restarts", restarts)
        self._count_restarts(self.restarts)
        self.rho = checks.fraction("rho", rho)
        self.alpha = checks.in_interval("alpha", alpha, 0, 1, low_closed=False)
        if not checks.flag("early_stop", early_stop):
            self.stop_top_k = None
        self.seed = checks.non_negative_int("seed", seed)
        self.step_sizes: torch.Tensor | None = None

    def _perturb(self, x, y):
        targets = self._targets(x, y)
        if targets is None:
            runs = [(None, (restart,)) for restart in range(self.restarts)]
        else:
            runs = [(rank, ("target", rank, restart)) for rank in range(targets.shape[1])
                    for restart in range(self.restarts)]
        fooled, level = x.clone(), torch.full((len(x),), CORRECT, device=x.device)
        best, best_loss = x.clone(), torch.full((len(x),), float("-inf"), dtype=x.dtype,
                                                device=x.device)
        self.step_sizes = torch.full((len(x),), 2 * self.eps)
        # Without early stopping a misclassified point is done; with it, a stopped one.
        done = MISCLASSIFIED if self.stop_top_k is None else STOPPED
        for rank, stream in runs:
            rows = (level < done).nonzero().squeeze(1)
            if len(rows) == 0:
                break
            target = None if rank is None else targets[rows, rank]
            run = self._descend(x[rows], y[rows], target, rows, stream)
            if self.restarts > 1:
                first = (level[rows] == CORRECT) & (run.level > CORRECT)
                self.stats[f"fooled_by_restart_{stream[-1] + 1}"] += int(first.sum())
            raised = run.level > level[rows]
            fooled[rows[raised]], level[rows[raised]] = run.fooled[raised], run.level[raised]
            better = run.best_loss > best_loss[rows]
            best[rows[better]], best_loss[rows[better]] = run.best[better], run.best_loss[better]
        return torch.where(per_point(level > CORRECT, x), fooled, best)

    @torch.no_grad()
    def _targets(self, x, y) -> torch.Tensor | None:
        """APGD-T's target classes per point, most likely first: the top `target_classes`
        (at most all but y) of the clean logits without y. None when untargeted."""
        if not self.target_classes:
            return None
        logits = self.model(x)
        self._need_classes(logits, 4)
        others = logits.scatter(1, y[:, None], float("-inf"))
        return others.topk(min(self.target_classes, logits.shape[1] - 1), dim=1).indices

    def _need_classes(self, logits, count: int) -> None:
        classes = logits.shape[1]
        if classes < count:
            what = "targeted DLR (target_classes > 0)" if count == 4 else "loss=dlr"
            raise UserError(f"attack {self.name}: {what} needs at least {count} classes, the "
                            f"model predicts {classes}")

    def _losses(self, logits, y, target) -> torch.Tensor:
        """The loss each point ascends, one value per point."""
        if target is not None:
            return targeted_dlr(logits, y, target)
        if self.loss == "dlr":
            self._need_classes(logits, 3)
            return dlr(logits, y)
        return F.cross_entropy(logits, y, reduction="none")

    def _start(self, x, rows, stream) -> torch.Tensor:
        if self.norm == "linf":
            noise = self._random(x.shape[1:], "start", *stream, rows=rows, dtype=x.dtype)
            offset = (2 * noise - 1) * self.eps
        else:
            direction = self._random(x.shape[1:], "start", *stream, rows=rows, kind="randn",
                                     dtype=x.dtype)
            offset = self.eps * direction / per_example_norm(direction, 2)
        return self._project(x, x + offset.to(x.device))

    def _direction(self, grad) -> torch.Tensor:
        """The steepest ascent direction of unit norm in the attack's norm."""
        if self.norm == "linf":
            return grad.sign()
        return grad / per_example_norm(grad, 2).clamp_min(1e-12)

    def _step(self, x, x_adv, x_prev, grad, step_size, weight) -> torch.Tensor:
        """z = P(x_k + eta d), then x_{k+1} = P(x_k + weight (z - x_k) + (1 - weight)(x_k - x_{k-1}))."""
        z = self._project(x, x_adv + per_point(step_size, x) * self._direction(grad))
        return self._project(x, x_adv + weight * (z - x_adv) + (1 - weight) * (x_adv - x_prev))

    def _total_loss(self, logits, y, target) -> torch.Tensor:
        return self._losses(logits, y, target).sum()

    def _descend(self, x, y, target, rows, stream) -> Run:
        """One APGD run on the points x, which are `rows` of the call."""
        n, device = len(x), x.device
        x_adv = self._start(x, rows, stream)
        x_prev, grad = x_adv.clone(), torch.zeros_like(x)
        fooled, level = x_adv.clone(), torch.full((n,), CORRECT, device=device)
        best, best_grad = x_adv.clone(), torch.zeros_like(x)
        best_loss = torch.full((n,), float("-inf"), dtype=x.dtype, device=device)
        step_size = torch.full((n,), 2 * self.eps, dtype=x.dtype, device=device)
        loss_prev = torch.zeros(n, dtype=x.dtype, device=device)
        increases = torch.zeros(n, device=device)  # steps that raised the loss, this window
        best_at_mark, halved = best_loss.clone(), torch.zeros(n, dtype=torch.bool, device=device)
        marks, last_mark = checkpoints(self.steps), 0
        active = torch.arange(n, device=device)
        for k in range(self.steps + 1):
            a = active
            target_a = None if target is None else target[a]
            if k < self.steps:
                logits, grad[a] = self._input_gradient(
                    x_adv[a], partial(self._total_loss, y=y[a], target=target_a))
            else:  # the last iterate takes no step: its loss and class are all we need
                with torch.no_grad():
                    logits = self.model(x_adv[a])
            with torch.no_grad():
                loss = self._losses(logits, y[a], target_a)
            # Fooled is judged on the true label (also for APGD-T): robust accuracy counts that.
            stopped = ~self._unfinished(logits, y[a])
            now = torch.where(stopped, STOPPED, (logits.argmax(1) != y[a]).long())
            raised = now > level[a]
            fooled[a[raised]], level[a[raised]] = x_adv[a[raised]], now[raised]
            better = loss > best_loss[a]
            won = a[better]
            best[won], best_grad[won], best_loss[won] = x_adv[won], grad[won], loss[better]
            if k > 0:
                increases[a] += (loss > loss_prev[a]).float()
            loss_prev[a] = loss
            if self.stop_top_k is not None:
                active = a = a[~stopped]
            if k == self.steps or len(a) == 0:
                break
            if k in marks and k > 0:
                halve = ((increases[a] < self.rho * (k - last_mark))
                         | (~halved[a] & (best_loss[a] == best_at_mark[a])))
                back = a[halve]
                step_size[back] /= 2
                x_adv[back], grad[back], loss_prev[back] = best[back], best_grad[back], best_loss[back]
                halved[a] = halve
                self.stats["step_halvings"] += int(halve.sum())
            if k in marks:
                increases.zero_()
                best_at_mark, last_mark = best_loss.clone(), k
            x_prev[a], x_adv[a] = x_adv[a], self._step(x[a], x_adv[a], x_prev[a], grad[a],
                                                       step_size[a], 1.0 if k == 0 else self.alpha)
        self.step_sizes[rows.cpu()] = step_size.cpu()
        return Run(fooled, level, best, best_loss)

