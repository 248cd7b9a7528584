"""Jacobian saliency-map attack, JSMA (Papernot et al. 2016): an L0 attack that raises a
pair of input features per iteration, the pair chosen by the saliency map.

The map comes from the input gradients of the model's outputs, softmax probabilities or
logits (JSMA-F and JSMA-Z in Carlini & Wagner's naming): alpha, of the target class, and
beta, of the sum of the other classes. A pair (p, q) is admissible when raising it helps
the target and hurts the rest, alpha_p + alpha_q > 0 and beta_p + beta_q < 0, and the
chosen pair maximises (alpha_p + alpha_q) * -(beta_p + beta_q). Untargeted, the roles
flip: the pair must lower the true class and raise the others. With softmax outputs
beta = -alpha, so the map picks the two features that raise the target's probability most.

Each chosen feature rises by eps (theta in the paper), clipped to 1, and leaves the search
domain, so a point changes two new features per iteration until `max_pixels` of its
features have changed, rounded down to whole pairs. The whole batch runs at once.
"""

import math

import torch

from robustbench_cli import checks
from robustbench_cli.attacks.base import Attack
from robustbench_cli.errors import UserError

TARGET_CHOICES = ("random", "ll", "none")
SALIENCY_CHOICES = ("softmax", "logits")


def parse_target(value) -> str | int:
    """"random", "ll" (least likely), "none" (untargeted) or a class index."""
    if checks.is_int(value) and value >= 0:
        return value
    if isinstance(value, str) and value.lower() in TARGET_CHOICES:
        return value.lower()
    raise UserError(f"target must be one of {', '.join(TARGET_CHOICES)} or a class index, "
                    f"got {value!r}")


def best_pairs(alpha, beta, domain, candidates):
    """Per row, the admissible pair (p, q) in `domain` with the largest alpha_pq * -beta_pq,
    where alpha and beta are already oriented (the pair must make alpha_pq > 0 > beta_pq).

    Only the `candidates` features with the largest d = alpha - beta are paired: any pair's
    score is at most ((d_p + d_q) / 2)^2 (AM-GM), so features with a small d cannot make a
    high-scoring pair. Returns p, q and whether any admissible pair exists.
    """
    spread = (alpha - beta).masked_fill(~domain, -math.inf)
    k = min(candidates or spread.shape[1], spread.shape[1])
    top = spread.topk(k, dim=1).indices
    a, b, usable = alpha.gather(1, top), beta.gather(1, top), domain.gather(1, top)
    a_pair, b_pair = a[:, :, None] + a[:, None, :], b[:, :, None] + b[:, None, :]
    distinct = ~torch.eye(k, dtype=torch.bool, device=top.device)
    admissible = (a_pair > 0) & (b_pair < 0) & usable[:, :, None] & usable[:, None, :] & distinct
    # Admissible scores are > 0, so 0 marks "no pair".
    score = (a_pair * -b_pair).masked_fill_(~admissible, 0).flatten(1)
    best_score, best = score.max(1)
    p, q = top.gather(1, (best // k)[:, None]), top.gather(1, (best % k)[:, None])
    return p.squeeze(1), q.squeeze(1), best_score > 0


class JSMA(Attack):
    """Saliency-map L0 attack: raises feature pairs by eps (clipped to 1), at most
    `max_pixels` of the features per point, until the point reaches its target class (or,
    with target="none", leaves its true class). A point with no admissible pair left stops.

    target: "random" (a class other than the true one, drawn per point from the seed and the
    point's index), "ll" (the clean input's least likely class), a class index (points
    already of that class are left alone) or "none".
    saliency: the outputs whose gradients make the map, "softmax" (stronger on our
    Fashion-MNIST models) or "logits". candidates: how many features the pair search
    considers (see `best_pairs`); null pairs every feature, as in the paper, which costs
    memory quadratic in the input size. Each iteration counts two gradient passes per point.
    """

    name = "jsma"
    norm = "l0"

    def __init__(self, model, *, eps, max_pixels=0.1, target="random", saliency="softmax",
                 candidates=256, seed=0):
        super().__init__(model, eps=eps)
        self.saliency = checks.choice("saliency", saliency, SALIENCY_CHOICES)
        self.max_pixels = checks.positive_number("max_pixels", max_pixels)
        if self.max_pixels > 1:
            raise UserError(f"max_pixels is a fraction of the input features, at most 1, "
                            f"got {self.max_pixels}")
        self.target = parse_target(target)
        self.candidates = checks.optional(checks.positive_int)("candidates", candidates)
        self.seed = checks.non_negative_int("seed", seed)

    @torch.no_grad()
    def _targets(self, x, y) -> torch.Tensor:
        """The class each point's saliency is about: its target, or its true label."""
        if self.target == "none":
            return y
        logits = self.model(x)
        classes = logits.shape[1]
        if self.target == "ll":
            return logits.argmin(1)
        if self.target == "random":
            # Per point from (seed, its index), on a CPU generator: the same on any device
            # and in any batch.
            shift = self._random((), "target", kind="randint", low=1, high=classes)
            return (y + shift.to(y.device)) % classes
        if self.target >= classes:
            raise UserError(f"target {self.target} is not a class of a {classes}-class model")
        return torch.full_like(y, self.target)

    def _saliency_gradients(self, x, targets):
        """Logits at x, then alpha and beta (flattened), from one pass over the batch twice:
        the first copy's gradient is the target output's, the second the other outputs' sum."""
        count = len(x)

        def target_then_others(logits):
            outputs = logits.softmax(1) if self.saliency == "softmax" else logits
            target = outputs.gather(1, torch.cat([targets, targets])[:, None]).squeeze(1)
            return target[:count].sum() + (outputs[count:].sum() - target[count:].sum())

        logits, grad = self._input_gradient(torch.cat([x, x]), target_then_others)
        return logits[:count], grad[:count].flatten(1), grad[count:].flatten(1)

    def _perturb(self, x, y):
        targets = self._targets(x, y)
        targeted = self.target != "none"
        orientation = 1.0 if targeted else -1.0  # untargeted: lower the true class instead
        x_adv = x.clone(memory_format=torch.contiguous_format)
        features = x_adv.view(len(x), -1)  # the same storage, one row per point
        domain = features < 1  # features that can still rise and have not changed yet
        active = torch.arange(len(x), device=x.device)
        for _ in range(math.ceil(self.max_pixels * features.shape[1]) // 2):
            logits, alpha, beta = self._saliency_gradients(x_adv[active], targets[active])
            prediction = logits.argmax(1)
            done = prediction == targets[active] if targeted else prediction != y[active]
            p, q, found = best_pairs(orientation * alpha[~done], orientation * beta[~done],
                                     domain[active[~done]], self.candidates)
            active = active[~done][found]
            if len(active) == 0:
                break
            for feature in (p[found], q[found]):
                features[active, feature] = (features[active, feature] + self.eps).clamp(max=1)
                domain[active, feature] = False
        return x_adv
