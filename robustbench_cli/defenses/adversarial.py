"""Adversarial training (Kurakin, Goodfellow, Bengio 2017, Algorithm 1; Madry et al.'s PGD
training is the case k = m with a PGD generator).

Each minibatch of m examples has k of them replaced by adversarial examples made with the
current model (in eval mode: the attack base class switches it and restores train mode for
the update). The loss is (sum_clean L + lam * sum_adv L) / ((m - k) + lam * k).
"""

import math

import torch

from robustbench_cli import attacks


def sample_eps(n: int, eps_max: float, sigma: float | None, generator: torch.Generator) -> torch.Tensor:
    """Per-example eps: |N(0, sigma)| truncated to [0, eps_max] (redrawn until inside);
    sigma None gives eps_max for every example."""
    if sigma is None:
        return torch.full((n,), eps_max)
    eps = (torch.randn(n, generator=generator) * sigma).abs()
    while (outside := eps > eps_max).any():
        eps[outside] = (torch.randn(int(outside.sum()), generator=generator) * sigma).abs()
    return eps


def kurakin_loss(clean_losses: torch.Tensor, adv_losses: torch.Tensor, lam: float) -> torch.Tensor:
    """(sum_clean L + lam * sum_adv L) / ((m - k) + lam * k) from per-example losses."""
    k, clean = len(adv_losses), len(clean_losses)
    return (clean_losses.sum() + lam * adv_losses.sum()) / (clean + lam * k)


class AdversarialObjective:
    """The training objective of one adv_train run (a callable for ClassifierModule)."""

    def __init__(self, attack: str, attack_params: dict, k: int | None, adv_fraction: float,
                 lam: float, eps_max: float, eps_sigma: float | None, eps_levels: int | None, delay: int,
                 seed: int):
        self.attack, self.attack_params = attack, dict(attack_params)
        self.k, self.adv_fraction, self.lam = k, adv_fraction, lam
        self.eps_max, self.eps_sigma, self.eps_levels = eps_max, eps_sigma, eps_levels
        self.delay = delay
        self.generator = torch.Generator().manual_seed(seed)
        self._attacks: dict[float, attacks.Attack] = {}

    def adversarial_count(self, m: int) -> int:
        return min(m, self.k if self.k is not None else math.floor(self.adv_fraction * m))

    def quantised_eps(self, n: int) -> torch.Tensor:
        """Sampled eps rounded to the nearest of the levels eps_max * i / eps_levels,
        i = 1..eps_levels, so one attack serves each level (eps_levels None: unrounded).

        Kurakin et al. (document 004, Section 3) draw each training example's eps from
        |truncated normal(0, 8)| on [0, 16] (of 255): a continuous magnitude that is never
        exactly 0, so every adversarial slot holds a perturbed image. Rounding to the nearest
        level including 0 would send the draws below half a step (about 5% of them at the
        defaults) to eps = 0, a clean image counted as adversarial. The levels therefore
        start at one step: a draw below it goes up to it (the nearest non-zero level), every
        other draw to its nearest level. With eps_max 16/255 and 16 levels these are the
        integer eps 1..16 of the 0-255 scale, the same integer budgets Liao et al. use."""
        eps = sample_eps(n, self.eps_max, self.eps_sigma, self.generator)
        if self.eps_levels is None:
            return eps
        step = self.eps_max / self.eps_levels
        return (eps / step).round().clamp(1, self.eps_levels) * step

    def adversarial(self, model, x, y) -> torch.Tensor:
        """x with each example attacked at its own eps."""
        x_adv = x.clone()
        eps = self.quantised_eps(len(x))
        for value in eps.unique().tolist():
            if value == 0:  # possible only when eps_max rounds a level to 0 in float
                continue
            attack = self._attacks.get(value)
            if attack is None:
                attack = attacks.build(self.attack, model, eps=value, **self.attack_params)
                if self.eps_levels is not None:  # at most eps_levels of them; unrounded eps never repeat
                    self._attacks[value] = attack
            rows = (eps == value).nonzero().squeeze(1).to(x.device)
            x_adv[rows] = attack(x[rows], y[rows])
        return x_adv

    def __call__(self, module, x, y):
        m = len(x)
        k = 0 if module.global_step < self.delay else self.adversarial_count(m)
        if k:
            x = torch.cat([self.adversarial(module.model, x[:k], y[:k]), x[k:]])
        logits = module(x)
        losses = module.criterion(logits, y)
        return kurakin_loss(losses[k:], losses[:k], self.lam), logits, y
