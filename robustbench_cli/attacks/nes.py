"""NES (Ilyas et al. 2018, query-limited setting): PGD in the L-inf ball on a gradient
estimated from model outputs alone, never from autograd.

The estimate is antithetic natural evolution strategies: with u_i ~ N(0, I),
g = sum_i [L(x + sigma u_i) - L(x - sigma u_i)] u_i / (2 n sigma) over n pairs. L is the
margin max_{j != y} z_j - z_y of the logits z rather than cross-entropy: for a confident
point cross-entropy is a tiny number whose float32 differences at sigma = 0.001 are
rounding noise, while the margin's differences stay of the order sigma * |grad|.

Steps follow a running average of the estimates (momentum, as the authors' released code
does): a 100-query estimate in hundreds of dimensions is noisy, and averaging successive
ones makes the attack markedly stronger for the same number of queries.
"""

import torch

from robustbench_cli import checks
from robustbench_cli.attacks.base import Attack
from robustbench_cli.errors import UserError

# One forward holds at most this many images and input values (pairs of queries, chunked).
QUERY_IMAGES = 1024
QUERY_VALUES = 2**23


def margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per example, the best other logit minus the label's: > 0 exactly when misclassified."""
    label_logit = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return others.amax(1) - label_logit


class NES(Attack):
    """Sign steps of `step_size` on the NES gradient estimate, projected into the eps-ball.

    Each iteration spends, per still-correct point, one query to check whether it is already
    misclassified (then it stops, keeping that iterate) and 2 * `samples` for the estimate;
    iterations stop at `steps` or when another would overrun `max_queries` per point.
    `stats["queries"]` counts every image the model classified.

    Each point's search noise in an iteration comes from one generator seeded by (seed, the
    point's index, the iteration) (see `Attack._random`), which draws all that point's
    samples at once, so the noise does not depend on the batch or on which other points are
    still active. It is drawn on the input's device (on a GPU the volume would make CPU draws
    and host transfers the bottleneck), so a seed repeats a result on the same kind of
    device; CPU and CUDA generators give different values.
    """

    name = "nes"
    uses_gradients = False
    iterative = True
    stat_names = ("gradient_passes", "queries")

    def __init__(self, model, *, eps, samples=50, sigma=0.001, steps=None, step_size=None,
                 step_ratio=0.25, momentum=0.9, max_queries=10000, seed=0):
        super().__init__(model, eps=eps)
        self.samples = checks.positive_int("samples", samples)
        self.sigma = checks.positive_number("sigma", sigma)
        if step_size is None:
            self.step_size = checks.positive_number("step_ratio", step_ratio) * self.eps
        else:
            self.step_size = checks.positive_number("step_size", step_size)
        self.momentum = checks.in_interval("momentum", momentum, 0, 1, high_closed=False)
        self.max_queries = checks.positive_int("max_queries", max_queries)
        per_iteration = 2 * self.samples + 1
        if self.max_queries < per_iteration:
            raise UserError(f"max_queries must allow one iteration, 2 * samples + 1 = "
                            f"{per_iteration} queries, got {self.max_queries}")
        iterations = self.max_queries // per_iteration
        if steps is not None:
            iterations = min(iterations, checks.positive_int("steps", steps))
        self.iterations = iterations
        self.seed = checks.non_negative_int("seed", seed)

    def _perturb(self, x, y):
        x_adv = x.clone()
        direction = torch.zeros_like(x)  # the running average of the estimates
        active = torch.arange(len(x), device=x.device)
        for iteration in range(self.iterations):
            active = active[self._unfinished(self._query(x_adv[active]), y[active])]
            if len(active) == 0:
                break
            estimate = self._estimate_gradient(x_adv[active], y[active], active, iteration)
            direction[active] = self.momentum * direction[active] + (1 - self.momentum) * estimate
            step = self.step_size * direction[active].sign()
            x_adv[active] = self._project(x[active], x_adv[active] + step)
        return x_adv

    def _query(self, images: torch.Tensor) -> torch.Tensor:
        self.stats["queries"] += len(images)
        return self.model(images)

    def _estimate_gradient(self, x, y, rows, iteration):
        """The antithetic NES estimate of the margin's gradient at each point of x (the
        call's points `rows`), from each point's own noise for this iteration."""
        per_image = x[0].numel()
        chunk = max(1, min(QUERY_IMAGES, QUERY_VALUES // per_image) // 2)  # pairs per forward
        group = max(1, chunk // self.samples)  # points whose noise is drawn at once
        broadcast = [1] * (x.dim() - 1)
        grad = torch.empty_like(x)
        for start in range(0, len(x), group):
            part = slice(start, start + group)
            noise = self._random((self.samples, *x.shape[1:]), "estimate", iteration,
                                 rows=rows[part], kind="randn", dtype=x.dtype, device=x.device,
                                 portable=False).flatten(0, 1)
            owner = torch.arange(start, start + len(noise) // self.samples,
                                 device=x.device).repeat_interleave(self.samples)
            difference = torch.empty(len(noise), dtype=x.dtype, device=x.device)
            for first in range(0, len(noise), chunk):
                pairs = slice(first, first + chunk)
                centre, offset = x[owner[pairs]], self.sigma * noise[pairs]
                # Queries are valid images: clamping makes a pixel at 0 or 1 a one-sided
                # difference.
                probes = torch.cat([centre + offset, centre - offset]).clamp(0, 1)
                labels = y[owner[pairs]]
                losses = margin(self._query(probes), torch.cat([labels, labels]))
                count = len(labels)
                difference[pairs] = losses[:count] - losses[count:]
            weighted = difference.view(-1, *broadcast) * noise
            grad[part] = weighted.view(-1, self.samples, *x.shape[1:]).sum(1)
        return grad / (2 * self.samples * self.sigma)
