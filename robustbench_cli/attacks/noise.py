"""Random-noise baselines: one seeded draw per point, no model access at all.

A gradient attack that does no better than noise of the same size is a warning sign, so
these share the eps sweep with the real attacks. Noise is drawn on the CPU generator, so a
seed gives the same perturbation on any device.
"""

from abc import abstractmethod

import torch

from robustbench_cli.attacks import params
from robustbench_cli.attacks.base import Attack


class NoiseAttack(Attack):
    """x + noise, clamped to [0, 1] (and to the eps-ball where the norm has one)."""

    uses_gradients = False

    def __init__(self, model, *, eps, seed=0):
        super().__init__(model, eps=eps)
        self.generator = torch.Generator().manual_seed(params.non_negative_int("seed", seed))

    def _perturb(self, x, y):
        return x + self._noise(x.shape, x.dtype).to(x.device)

    @abstractmethod
    def _noise(self, shape, dtype) -> torch.Tensor:
        """One draw of the noise, on the CPU."""


class Gaussian(NoiseAttack):
    """x + N(0, sigma^2 I) with sigma = eps unless given: no ball, only [0, 1]."""

    name = "gaussian"
    norm = None

    def __init__(self, model, *, eps, sigma=None, seed=0):
        super().__init__(model, eps=eps, seed=seed)
        self.sigma = self.eps if sigma is None else params.positive_number("sigma", sigma)

    def _noise(self, shape, dtype):
        return self.sigma * torch.randn(shape, generator=self.generator, dtype=dtype)


class RandomSign(NoiseAttack):
    """x + eps * sign(N(0, I)): a random corner of the L-inf ball."""

    name = "random_sign"

    def _noise(self, shape, dtype):
        return self.eps * torch.randn(shape, generator=self.generator, dtype=dtype).sign()


class TruncNormal(NoiseAttack):
    """x + N(0, (eps/2)^2) truncated to [-eps, eps] (so its std is about 0.88 * eps / 2)."""

    name = "trunc_normal"

    def _noise(self, shape, dtype):
        noise = torch.empty(shape, dtype=dtype)
        return torch.nn.init.trunc_normal_(noise, std=self.eps / 2, a=-self.eps, b=self.eps,
                                           generator=self.generator)
