"""FAB, the fast adaptive boundary attack (Croce & Hein 2020), in the L-inf and L2 norms,
untargeted and targeted (FAB-T).

FAB looks for the adversarial point nearest to the clean point x0. At each iterate x it
linearises the logit differences f_j = z_j - z_y and takes the class whose linearised
boundary is nearest, |f_j| / ||grad f_j||_q (q the dual norm); FAB-T only looks at its target
class. It projects both x and x0 onto that hyperplane, within the [0, 1] box (the smallest
step in the attack's norm; where the box cannot reach the hyperplane, as far toward it as the
box allows), and moves to

    (1 - alpha) (x + eta d) + alpha (x0 + eta d0),   alpha = min(|d| / (|d| + |d0|), alpha_max),

extrapolating by eta to cross the boundary and biased toward x0's projection by alpha, the
more so the farther x is from the boundary compared with x0. An adversarial iterate is kept
if it is the nearest one yet, and the search goes on from x0 + beta (x - x0), back toward x0.
The first run (per target) starts at x0, restarts at a random point of norm eps / 2 (on the
sphere, as AutoAttack's FAB does; its min(best norm, eps) / 2 is eps / 2 here, since only
points not fooled within eps restart). FAB-T runs once per target, the k classes most likely
at x0 besides the true one, each on the points still unfooled, as AutoAttack does.

After each run three steps of false position on the margin (overshooting by eta), along the
segment from x0 to the run's nearest adversarial point, move that point toward the boundary
(five forward passes a point), like the final search the authors' first code offers (off by
default there; AutoAttack has none). The box-constrained projection is solved exactly as in
their code, by Newton's method rather than by sorting (see `project_on_hyperplane`).

A point counts as fooled only if FAB found an adversarial point within eps: that point is
returned; otherwise the clean point is, as in AutoAttack, so robust accuracy is the share of
points whose nearest adversarial point found lies beyond eps.

Adversarial means misclassified (top-1), also for FAB-T. Early stopping lets a point leave
once it has an adversarial point within eps, whatever top-k the evaluation stops at: FAB
searches the top-1 boundary, and walking on would only shrink a perturbation that already
counts. Without it every point runs every step and the returned point is the nearest found.
"""

import math

import torch

from robustbench_cli import checks
from robustbench_cli.attacks.base import Attack, per_example_norm, per_point
from robustbench_cli.attacks.nes import margin
from robustbench_cli.attacks.params import NORMS

ORDER = {"linf": math.inf, "l2": 2.0}
DUAL_ORDER = {"linf": 1.0, "l2": 2.0}
FINAL_SEARCH_STEPS = 3
TINY = 1e-12  # gradient entries below it count as zero; floor of denominators
# One gradient pass holds at most this many images and input values (copies of the batch,
# one per candidate class, chunked; at least one copy a pass).
GRADIENT_IMAGES = 1024
GRADIENT_VALUES = 2**23


def logit_difference(logits: torch.Tensor, classes: torch.Tensor, labels: torch.Tensor):
    """Per example, z_class - z_label."""
    return (logits.gather(1, classes[:, None]) - logits.gather(1, labels[:, None])).squeeze(1)


def project_on_hyperplane(t: torch.Tensor, w: torch.Tensor, c: torch.Tensor, norm: str):
    """Per row of t (flattened points in [0, 1]), the step d of least `norm` with
    <w, d> = -c and t + d in [0, 1]; where no such step exists, the step within the box
    that brings <w, t + d> nearest to the hyperplane.

    Moving coordinate i against the sign of w_i lowers <w, .> until the box stops it after
    `room_i`. The least-norm step moves every coordinate by min(lam, limit_i) (L-inf:
    limit = room) or by |w_i| min(lam, limit_i) (L2: along w, limit = room / |w_i|), so
    <w, .> drops by h(lam) = sum_i slope_i min(lam, limit_i), with slope |w_i| (L-inf) or
    w_i^2 (L2): concave, piecewise linear and increasing. Newton's method from lam = 0 solves
    h(lam) = c exactly: each iterate stays below the solution and passes at least one
    breakpoint until none is left in between (two or three iterations on our models, where
    sorting the breakpoints, the other exact way, is slow on CPUs).
    """
    w = w.masked_fill(w.abs() < TINY, 0)
    w = torch.where(c[:, None] < 0, -w, w)  # now <w, .> must drop by |c|
    c = c.abs()[:, None]
    size = w.abs()
    room = torch.where(w > 0, t, 1 - t)
    if norm == "linf":
        slope, limit = size, room
    else:
        slope, limit = size**2, torch.where(size > 0, room / size.clamp_min(TINY), 0)
    lam = torch.zeros_like(c)
    while True:
        stopped = limit <= lam
        dropped = torch.where(stopped, slope * limit, 0).sum(1, keepdim=True)
        moving = torch.where(stopped, 0, slope).sum(1, keepdim=True)
        # Nothing left moving (the box cannot reach the hyperplane): lam becomes huge and
        # every coordinate goes as far as the box allows.
        lam_next = (c - dropped) / moving.clamp_min(TINY)
        passed = (stopped.logical_not() & (limit <= lam_next)).any(1, keepdim=True)
        lam = torch.maximum(lam, lam_next)
        if not passed.any():
            break
    step = torch.minimum(lam, limit)
    return -w.sign() * step if norm == "linf" else -w * step


class FAB(Attack):
    """Minimum-norm boundary search (see the module docstring), evaluated at eps.

    norm: "linf" or "l2". target_classes: 0 for untargeted FAB, whose iterations need the
    input gradient of every logit difference (classes - 1 gradient passes a point), or k for
    FAB-T, one run per each of the k most likely other classes (capped at classes - 1), one
    gradient pass a point per iteration. steps: iterations per run; restarts: runs per target
    (the first from the clean point). alpha_max, eta, beta: the paper's bias toward the
    clean point, extrapolation and backward step. Each iteration also classifies the new
    iterate (a forward pass, not counted as a gradient pass). With restarts > 1 the row counts,
    per restart, the points it was the first to fool within eps (`fooled_by_restart_<r>`,
    summed over FAB-T's targets).
    """

    name = "fab"
    iterative = True

    def __init__(self, model, *, eps, norm="linf", target_classes=0, steps=100, restarts=1,
                 alpha_max=0.1, eta=1.05, beta=0.9, seed=0, early_stop=True):
        self.norm = checks.choice("norm", norm, NORMS)  # before eps, whose bound it sets
        super().__init__(model, eps=eps)
        self.target_classes = checks.non_negative_int("target_classes", target_classes)
        self.steps = checks.positive_int("steps", steps)
        self.restarts = checks.positive_int("restarts", restarts)
        self._count_restarts(self.restarts)
        self.alpha_max = checks.fraction("alpha_max", alpha_max)
        self.eta = checks.number("eta", eta)
        if self.eta < 1:
            raise checks.Refused("eta", ">= 1 (it extrapolates past the boundary)", str(self.eta))
        self.beta = checks.open_fraction("beta", beta)
        self.seed = checks.non_negative_int("seed", seed)
        if not checks.flag("early_stop", early_stop):
            self.stop_top_k = None

    def _perturb(self, x, y):
        with torch.no_grad():
            logits = self.model(x)
        classes = logits.shape[1]
        best, best_norm = x.clone(), torch.full((len(x),), math.inf, device=x.device)
        best_norm[logits.argmax(1) != y] = 0  # already misclassified: x0 is the nearest
        if self.restarts > 1:  # as the first run's, like the other attacks' first restart
            self.stats["fooled_by_restart_1"] += int((best_norm == 0).sum())
        if self.target_classes:
            # FAB-T: the most likely classes at x0 other than the true one, a run for each.
            ranked = logits.scatter(1, y[:, None], -math.inf).argsort(1, descending=True)
            runs = ranked[:, :min(self.target_classes, classes - 1)].T[:, :, None]
        else:
            others = torch.arange(classes - 1, device=x.device).expand(len(x), -1)
            runs = (others + (others >= y[:, None]))[None]  # every class but the true one
        for rank, candidates in enumerate(runs):
            for restart in range(self.restarts):
                rows = (best_norm > self.eps).nonzero().squeeze(1)
                if len(rows) == 0:
                    break
                point, norm = self._run(x[rows], y[rows], candidates[rows], rows, rank, restart)
                if self.restarts > 1:  # every row was unfooled within eps until this run
                    self.stats[f"fooled_by_restart_{restart + 1}"] += int((norm <= self.eps).sum())
                better = norm < best_norm[rows]
                best[rows[better]], best_norm[rows[better]] = point[better], norm[better]
        return torch.where(per_point(best_norm <= self.eps, x), best, x)

    def _run(self, x0, y, candidates, rows, rank, restart):
        """One run from x0 (or a random start): the nearest adversarial point found and its
        norm per point (x0 and inf where none was found)."""
        x = x0.clone() if restart == 0 else self._random_start(x0, rows, rank, restart)
        best, best_norm = x0.clone(), torch.full((len(x0),), math.inf, device=x0.device)
        active = torch.arange(len(x0), device=x0.device)
        for _ in range(self.steps):
            if self.stop_top_k is not None:
                active = active[best_norm[active] > self.eps]
                if len(active) == 0:
                    break
            x_new = self._step(x[active], x0[active], y[active], candidates[active])
            with torch.no_grad():
                adversarial = self.model(x_new).argmax(1) != y[active]
            delta = x_new - x0[active]
            norm = per_example_norm(delta, ORDER[self.norm]).flatten()
            nearer = adversarial & (norm < best_norm[active])
            best[active[nearer]], best_norm[active[nearer]] = x_new[nearer], norm[nearer]
            # Back toward x0 from the far side, so the next step starts near the boundary.
            x[active] = torch.where(per_point(adversarial, x), x0[active] + self.beta * delta,
                                    x_new)
        found = best_norm.isfinite()
        best[found] = self._final_search(x0[found], y[found], best[found])
        best_norm[found] = per_example_norm(best[found] - x0[found], ORDER[self.norm]).flatten()
        return best, best_norm

    def _random_start(self, x0, rows, rank, restart):
        """x0 plus a random direction of norm eps / 2, clamped into [0, 1]."""
        shape = x0.shape[1:]
        if self.norm == "linf":
            direction = 2 * self._random(shape, "start", rank, restart, rows=rows,
                                         dtype=x0.dtype) - 1
        else:
            direction = self._random(shape, "start", rank, restart, rows=rows, kind="randn",
                                     dtype=x0.dtype)
        direction = direction / per_example_norm(direction, ORDER[self.norm])
        return (x0 + self.eps / 2 * direction.to(x0.device)).clamp(0, 1)

    def _step(self, x, x0, y, candidates):
        """One FAB iteration from x: the projections of x and x0 onto the nearest linearised
        boundary, extrapolated and mixed."""
        f, w = self._nearest_boundary(x, y, candidates)
        flat, flat0 = x.flatten(1), x0.flatten(1)
        c0 = f + (w * (flat0 - flat)).sum(1)  # the linearised difference at x0
        d = project_on_hyperplane(torch.cat([flat, flat0]), torch.cat([w, w]),
                                  torch.cat([f, c0]), self.norm)
        size = d.norm(p=ORDER[self.norm], dim=1, keepdim=True).clamp_min(1e-8)
        d, d0 = d.view(2, *x.shape).unbind()
        size, size0 = size.view(2, -1).unbind()
        alpha = per_point((size / (size + size0)).clamp(max=self.alpha_max), x)
        return ((1 - alpha) * (x + self.eta * d) + alpha * (x0 + self.eta * d0)).clamp(0, 1)

    def _nearest_boundary(self, x, y, candidates):
        """Among each point's candidate classes j, the one whose linearised boundary is
        nearest to x: f_j = z_j - z_y at x and its input gradient (flattened).

        Each candidate column is a copy of the batch in a gradient pass, as many copies a pass
        as the pass's limits allow; only the nearest class's gradient is kept."""
        count, columns = candidates.shape
        images = min(GRADIENT_IMAGES, GRADIENT_VALUES // x[0].numel())
        per_pass = max(1, images // count)
        best_f = best_w = best_distance = None
        for first in range(0, columns, per_pass):
            block = candidates[:, first:first + per_pass]
            copies = block.shape[1]
            classes, labels = block.T.reshape(-1), y.repeat(copies)
            logits, grad = self._input_gradient(
                x.repeat(copies, *([1] * (x.dim() - 1))),
                lambda out, c=classes, t=labels: logit_difference(out, c, t).sum(),
            )
            f = logit_difference(logits, classes, labels).view(copies, count)
            w = grad.view(copies, count, -1)
            distance = f.abs() / w.norm(p=DUAL_ORDER[self.norm], dim=2).clamp_min(TINY)
            distance, nearest = distance.min(0)
            f = f.gather(0, nearest[None]).squeeze(0)
            w = w[nearest, torch.arange(count, device=x.device)]
            if best_distance is None:
                best_f, best_w, best_distance = f, w, distance
            else:
                nearer = distance < best_distance
                best_f = torch.where(nearer, f, best_f)
                best_w = torch.where(nearer[:, None], w, best_w)
                best_distance = torch.minimum(distance, best_distance)
        return best_f, best_w

    @torch.no_grad()
    def _final_search(self, x0, y, adversarial):
        """False position on the segment from x0 to an adversarial point: the margin (best
        other logit minus the true one) is interpolated linearly between the nearest
        adversarial and the farthest non-adversarial point found on the segment, and the
        point eta times as far as its zero tried next, so that a point taken lies past the
        boundary by more than rounding (whose sign the batch could change). The nearest
        adversarial point found after a few steps."""
        low, high = torch.zeros(len(x0), device=x0.device), torch.ones(len(x0), device=x0.device)
        low_margin, high_margin = margin(self.model(x0), y), margin(self.model(adversarial), y)
        for _ in range(FINAL_SEARCH_STEPS):
            zero = -low_margin / (high_margin - low_margin).clamp_min(TINY)
            t = low + (high - low) * (self.eta * zero).clamp(max=1)
            t_margin = margin(self.model(x0 + per_point(t, x0) * (adversarial - x0)), y)
            fooled = t_margin > 0
            high, high_margin = torch.where(fooled, t, high), torch.where(fooled, t_margin, high_margin)
            low, low_margin = torch.where(fooled, low, t), torch.where(fooled, low_margin, t_margin)
        return x0 + per_point(high, x0) * (adversarial - x0)
