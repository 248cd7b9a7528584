"""Square Attack (Andriushchenko, Croce, Flammarion, Hein 2020): a score-based random search
in the L-inf or L2 ball that only reads the model's logits.

From a start on the ball's surface, each iteration changes one random square of the current
perturbation and keeps the change only if it lowers the loss, the untargeted margin
z_y - max_{i != y} z_i (or -cross-entropy). The square's area is a fraction p of the image,
p_init at first and halved at the paper's iterations 10, 50, 200, 500, 1000, 2000, 4000,
6000 and 8000 of 10,000, rescaled to the query budget.

L-inf: the start is vertical stripes of +-eps (one sign per point, channel and column); a
step sets the square to +-eps, one sign per channel. As in the paper's code the signs are
redrawn until the square changes (the same distribution as flipping a uniformly drawn
non-empty set of channels, which is what is done), so no query is spent on an unchanged
image. L2: the start is a grid of bumps of side H/5 with random signs, scaled to norm eps;
a step gives a new bump on a first square, per channel, the energy the perturbation held
in it and in a second square (which is cleared) plus a share of the room left in the ball,
then rescales the perturbation to norm eps. The grid tiles as many whole bumps as fit,
centred: the paper's grid wherever that one fits (it overruns some images under 25 pixels).

Deviations: AutoAttack's version shares each iteration's square, signs and bump orientation
across the batch (the paper's code draws squares per point, from one global generator); here
every point draws its own square, signs and bump orientation from its own generator (see
`Attack._random`), so a point's run depends on (seed, its index) and not on the batch. The
draws come in blocks of DRAW_BLOCK iterations, one stream per block: seeding a generator
per point per iteration would cost more than the model's forward pass on small models.
"""

import math

import torch
import torch.nn.functional as F

from robustbench_cli import checks
from robustbench_cli.attacks.base import Attack, per_example_norm
from robustbench_cli.attacks.nes import margin
from robustbench_cli.attacks.params import NORMS
from robustbench_cli.errors import UserError

LOSSES = ("margin", "ce")
# The paper's iterations (of 10,000) after which p halves.
HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
DRAW_BLOCK = 100  # iterations whose random draws a point makes at once
MAX_CHANNELS = 52  # the L-inf channel flip is drawn from one float64 uniform


def bump(rows: int, cols: int) -> torch.Tensor:
    """The paper's pseudo-Gaussian bump on a rows x cols rectangle, unit L2 norm: a pixel at
    Chebyshev distance d from the centre holds sum_{k=d}^{K-1} 1 / (k + 1)^2."""
    rings = max(rows, cols) // 2 + 1
    tail = (1 / torch.arange(1, rings + 1, dtype=torch.float64) ** 2).flip(0).cumsum(0).flip(0)
    distance = torch.maximum((torch.arange(rows) - rows // 2).abs()[:, None],
                             (torch.arange(cols) - cols // 2).abs()[None, :])
    values = tail[distance]
    return values / values.norm().clamp_min(1e-12)


def square_bump(side: int) -> torch.Tensor:
    """The paper's L2 update shape: a positive bump on the top half of the square and a
    negative one on the bottom half, unit L2 norm."""
    half = side // 2
    values = torch.cat([bump(half, side), -bump(side - half, side)])
    return values / values.norm()


def signs(uniform: torch.Tensor, dtype) -> torch.Tensor:
    return torch.where(uniform < 0.5, -1.0, 1.0).to(dtype)


def positions(uniform: torch.Tensor, count: int) -> torch.Tensor:
    """Uniform integers in [0, count) from uniform floats in [0, 1)."""
    return (uniform * count).long().clamp_max(count - 1)


def channel_norm(t: torch.Tensor) -> torch.Tensor:
    return t.square().sum((2, 3), keepdim=True).sqrt()


class Square(Attack):
    """Random search over squares, `queries` model outputs per point at most (the start
    counts as one). A point leaves at its first query whose true class falls outside the
    stopping top-k, and keeps that image; since only improvements are kept, without early
    stopping (`early_stop=false`) the result is the lowest-loss image of the whole budget.

    `stats["queries"]` counts every image the model classified, `point_queries` (after a
    call) each point's share, in the call's order.
    """

    name = "square"
    uses_gradients = False
    iterative = True
    stat_names = ("gradient_passes", "queries")

    def __init__(self, model, *, eps, norm="linf", queries=5000, p_init=0.8, loss="margin",
                 seed=0, early_stop=True):
        self.norm = checks.choice("norm", norm, NORMS)  # before Attack's eps check, which reads it
        super().__init__(model, eps=eps)
        self.queries = checks.positive_int("queries", queries)
        self.p_init = checks.in_interval("p_init", p_init, 0, 1, low_closed=False)
        self.loss = checks.choice("loss", loss, LOSSES)
        self.seed = checks.non_negative_int("seed", seed)
        if not checks.flag("early_stop", early_stop):
            self.stop_top_k = None
        self.point_queries = torch.zeros(0, dtype=torch.long)
        self._bumps: dict[int, torch.Tensor] = {}
        self._bands: dict[tuple, torch.Tensor] = {}

    def _perturb(self, x, y):
        if x.dim() != 4:
            raise UserError(f"square attacks images (N, C, H, W), got shape {tuple(x.shape)}")
        if self.norm == "linf" and x.shape[1] > MAX_CHANNELS:
            raise UserError(f"square L-inf takes at most {MAX_CHANNELS} channels, "
                            f"got {x.shape[1]}")
        x_best = self._start(x)
        logits = self._query(x_best)
        used = torch.ones(len(x), dtype=torch.long, device=x.device)
        active = self._unfinished(logits, y).nonzero().squeeze(1)
        # The active points' state, compacted (each tensor op costs per call, not per point),
        # and written back as points leave.
        x_act, y_act = x[active], y[active]
        best, best_loss = x_best[active], self._objective(logits, y)[active]
        best_fooled = logits[active].argmax(1) != y_act  # top-1: kept once found (see below)
        propose = self._linf_candidate if self.norm == "linf" else self._l2_candidate
        per_step = (3 if self.norm == "linf" else 5) + x.shape[1]
        ran = 0  # iterations so far: an active point has used 1 + ran queries
        for step in range(self.queries - 1):
            if len(active) == 0:
                break
            block, offset = divmod(step, DRAW_BLOCK)
            if offset == 0:
                draws = self._random((DRAW_BLOCK, per_step), "step", block, rows=active,
                                     dtype=torch.float64, device=x.device)
            candidate = propose(x_act, best, draws[:, offset], self._side(step, x.shape))
            logits = self._query(candidate)
            ran += 1
            loss = self._objective(logits, y_act)
            going_on = self._unfinished(logits, y_act)
            # A stopping query is kept even when its loss is not lower, and a top-1 fooling
            # image is never traded for a correctly classified one of lower loss (possible
            # with ce, when the point goes on: no early stop, or stopping at top-5).
            fooled = logits.argmax(1) != y_act
            kept = ((loss < best_loss) & (fooled | ~best_fooled)) | ~going_on
            best = torch.lerp(best, candidate, kept.to(x.dtype)[:, None, None, None])
            best_loss = torch.where(kept, loss, best_loss)
            best_fooled = torch.where(kept, fooled, best_fooled)
            if not going_on.all():
                done = active[~going_on]
                x_best[done], used[done] = best[~going_on], 1 + ran
                active, x_act, y_act, best, best_loss, best_fooled, draws = (
                    t[going_on] for t in (active, x_act, y_act, best, best_loss, best_fooled, draws))
        x_best[active], used[active] = best, 1 + ran
        self.point_queries = used.cpu()
        return x_best

    def _query(self, images: torch.Tensor) -> torch.Tensor:
        self.stats["queries"] += len(images)
        return self.model(images)

    def _objective(self, logits, y) -> torch.Tensor:
        """Per point, the loss the search lowers."""
        if self.loss == "ce":
            return -F.cross_entropy(logits, y, reduction="none")
        return -margin(logits, y)

    def _side(self, step: int, shape) -> int:
        """The square's side at iteration `step`: sqrt(p * H * W) pixels, p from the paper's
        schedule rescaled to the budget; odd and at least 3 for L2, as the paper has it."""
        _, _, height, width = shape
        paper_step = step * 10000 // self.queries
        p = self.p_init / 2 ** sum(paper_step > bound for bound in HALVINGS)
        side = round(math.sqrt(p * height * width))
        side = max(side, 1) if self.norm == "linf" else max(side, 3) | 1
        return min(side, height, width)

    def _bump(self, side: int, like: torch.Tensor) -> torch.Tensor:
        if side not in self._bumps:
            self._bumps[side] = square_bump(side)
        return self._bumps[side].to(like.device, like.dtype)

    def _square(self, top, left, side: int, like: torch.Tensor) -> torch.Tensor:
        """Per point, the 0/1 mask (points, 1, H, W) of its side x side square at (top, left),
        in floats: on CPUs, full-size bool tensors are several times slower."""
        _, _, height, width = like.shape
        rows = self._band(side, height, like).index_select(0, top)
        cols = self._band(side, width, like).index_select(0, left)
        return (rows[:, :, None] * cols[:, None, :])[:, None]

    def _band(self, side: int, length: int, like: torch.Tensor) -> torch.Tensor:
        """Row k: the 0/1 indicator of pixels k to k + side - 1 of `length`."""
        key = (side, length, like.device, like.dtype)
        if key not in self._bands:
            start = torch.arange(length - side + 1, device=like.device)[:, None]
            pixel = torch.arange(length, device=like.device)
            self._bands[key] = ((pixel >= start) & (pixel < start + side)).to(like.dtype)
        return self._bands[key]

    def _start(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if self.norm == "linf":
            stripes = self._random((c, 1, w), "start", dtype=x.dtype, device=x.device)
            return (x + self.eps * signs(stripes, x.dtype)).clamp(0, 1)
        side = max(min(h, w) // 5, 1)
        rows, cols = h // side, w // side
        top, left = (h - rows * side) // 2, (w - cols * side) // 2
        draws = self._random((rows, cols, 1 + c), "start", dtype=torch.float64, device=x.device)
        shape = self._bump(side, x)
        # Each bump of the grid: the shape or its transpose, one sign per channel.
        oriented = torch.where((draws[..., 0] < 0.5)[..., None, None], shape.T, shape)
        bump_signs = signs(draws[..., 1:], x.dtype).permute(0, 3, 1, 2)[..., None, None]
        grid = (oriented[:, None] * bump_signs).permute(0, 1, 2, 4, 3, 5)
        delta = torch.zeros_like(x)
        delta[:, :, top:top + rows * side, left:left + cols * side] = grid.reshape(
            n, c, rows * side, cols * side)
        return (x + self.eps * delta / per_example_norm(delta, 2).clamp_min(1e-12)).clamp(0, 1)

    def _linf_candidate(self, x, x_best, draws, side):
        _, c, h, w = x.shape
        square = self._square(positions(draws[:, 0], h - side + 1),
                              positions(draws[:, 1], w - side + 1), side, x)
        channel_signs = signs(draws[:, 3:], x.dtype)[..., None, None]
        # lerp with 0/1 weights is exact: the square's new values, and x_best's elsewhere.
        candidate = torch.lerp(x_best, (x + self.eps * channel_signs).clamp(0, 1), square)
        low, high = (candidate - x_best).flatten(1).aminmax(dim=1)
        same = (low == 0) & (high == 0)
        if same.any():
            # The paper redraws until the square changes. An unchanged square holds, in
            # every channel, the value of the drawn sign, and any other sign changes it: so
            # redrawing is flipping a uniformly drawn non-empty set of channels.
            flips = 1 + (draws[:, 2] * (2**c - 1)).long().clamp_max(2**c - 2)
            bits = (flips[:, None] >> torch.arange(c, device=x.device)) & 1
            flipped = channel_signs * (1 - 2 * bits).to(x.dtype)[..., None, None]
            redrawn = torch.lerp(x_best, (x + self.eps * flipped).clamp(0, 1), square)
            candidate = torch.lerp(candidate, redrawn, same.to(x.dtype)[:, None, None, None])
        return candidate

    def _l2_candidate(self, x, x_best, draws, side):
        n, c, h, w = x.shape
        top, left = positions(draws[:, 0], h - side + 1), positions(draws[:, 1], w - side + 1)
        first = self._square(top, left, side, x)
        second = self._square(positions(draws[:, 2], h - side + 1),
                              positions(draws[:, 3], w - side + 1), side, x)
        both = torch.maximum(first, second)
        delta = x_best - x
        # The new bump, in its orientation, placed on the first square.
        shape = self._bump(side, x)
        oriented = torch.where((draws[:, 4] < 0.5)[:, None, None], shape.T, shape)
        offsets = torch.arange(side, device=x.device)
        placed = torch.zeros(n, 1, h, w, dtype=x.dtype, device=x.device)
        placed[torch.arange(n, device=x.device)[:, None, None], 0,
               (top[:, None] + offsets)[:, :, None], (left[:, None] + offsets)[:, None, :]] = oriented
        old = delta * first
        new = (placed * signs(draws[:, 5:], x.dtype)[..., None, None]
               + old / channel_norm(old).clamp_min(1e-12))
        # Per channel, the new square takes the energy both squares held plus an equal
        # share of the room left in the ball.
        room = (self.eps ** 2 - delta.square().sum((1, 2, 3))).clamp_min(0)
        energy = (room[:, None, None, None] / c + channel_norm(delta * both) ** 2).sqrt()
        new = new * energy / channel_norm(new).clamp_min(1e-12)
        delta = delta * (1 - both) + new
        return (x + self.eps * delta / per_example_norm(delta, 2).clamp_min(1e-12)).clamp(0, 1)
