"""Wald's sequential probability ratio test on an input's sensitivity (the probability that a
random mutant changes its label), as Wang et al. use it to stop drawing mutants early.

H_normal: sensitivity <= threshold - delta; H_adversarial: sensitivity >= threshold + delta,
with delta = indifference x threshold (Wang et al.: delta = 0.1 x threshold, alpha = beta =
0.05; the authors' code calls it relaxScale). After n mutants of which k changed the label, the log
likelihood ratio (adversarial over normal) is
    k log(p_adv / p_norm) + (n - k) log((1 - p_adv) / (1 - p_norm));
the test says adversarial once it reaches log((1 - beta) / alpha) and normal once it falls to
log(beta / (1 - alpha)). alpha bounds the chance of calling a normal input adversarial, beta
the chance of the converse.
"""

import math
from dataclasses import dataclass

import torch

from robustbench_cli.errors import UserError


@dataclass(frozen=True)
class SPRT:
    threshold: float
    alpha: float
    beta: float
    indifference: float

    def __post_init__(self):
        if not 0 < self.threshold or self.threshold * (1 + self.indifference) >= 1:
            raise UserError(
                f"the sensitivity threshold {self.threshold:.4g} leaves no room for the test: it "
                f"must be > 0 and threshold x (1 + indifference) < 1 (change detector.rate, "
                f"detector.rho, detector.threshold_rule or detector.threshold)")

    @property
    def p_normal(self) -> float:
        return self.threshold * (1 - self.indifference)

    @property
    def p_adversarial(self) -> float:
        return self.threshold * (1 + self.indifference)

    def verdicts(self, changed: torch.Tensor, drawn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(adversarial, normal): where the test has decided, after `drawn` mutants of which
        `changed` gave another label than the original model."""
        p0, p1 = self.p_normal, self.p_adversarial
        llr = (changed * math.log(p1 / p0)
               + (drawn - changed) * math.log((1 - p1) / (1 - p0)))
        upper = math.log((1 - self.beta) / self.alpha)
        lower = math.log(self.beta / (1 - self.alpha))
        return llr >= upper, llr <= lower
