"""Random-noise baselines: one seeded draw per point, no model access at all.

A gradient attack that does no better than noise of the same size is a warning sign, so
these share the eps sweep with the real attacks. Each point's noise comes from its own CPU
generator, seeded by (seed, the point's index) (see `Attack._random`), so a point gets the
same noise on any device, in any batch.
"""

from abc import abstractmethod

import torch

from robustbench_cli import checks
from robustbench_cli.attacks.base import Attack


class NoiseAttack(Attack):
    """x + noise, clamped to [0, 1] (and to the eps-ball where the norm has one)."""

    uses_gradients = False

    def __init__(self, model, *, eps, seed=0):
        super().__init__(model, eps=eps)
        self.seed = checks.non_negative_int("seed", seed)

    def _perturb(self, x, y):
        return x + self._noise(x.shape[1:], x.dtype).to(x.device)

    @abstractmethod
    def _noise(self, shape, dtype) -> torch.Tensor:
        """The noise for every point of the call, (points, *shape), on the CPU."""


class Gaussian(NoiseAttack):
    """x + N(0, sigma^2 I) with sigma = eps unless given: no ball, only [0, 1]."""

    name = "gaussian"
    norm = None

    def __init__(self, model, *, eps, sigma=None, seed=0):
        super().__init__(model, eps=eps, seed=seed)
        self.sigma = self.eps if sigma is None else checks.positive_number("sigma", sigma)

    def _noise(self, shape, dtype):
        return self.sigma * self._random(shape, "noise", kind="randn", dtype=dtype)


class RandomSign(NoiseAttack):
    """x + eps * sign(N(0, I)): a random corner of the L-inf ball."""

    name = "random_sign"

    def _noise(self, shape, dtype):
        return self.eps * self._random(shape, "noise", kind="randn", dtype=dtype).sign()


class TruncNormal(NoiseAttack):
    """x + N(0, (eps/2)^2) truncated to [-eps, eps] (so its std is about 0.88 * eps / 2)."""

    name = "trunc_normal"

    def _noise(self, shape, dtype):
        def truncated(values, generator):
            torch.nn.init.trunc_normal_(values, std=self.eps / 2, a=-self.eps, b=self.eps,
                                        generator=generator)

        return self._random(shape, "noise", kind=truncated, dtype=dtype)
