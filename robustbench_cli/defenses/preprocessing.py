"""`robust eval defense=input_noise | bit_depth`: a preprocessing in front of any trained
classifier, nothing to train.

Every attack sees the whole defended model (threat full), as an adaptive attacker would
(Athalye et al. 2018): against the noise it needs EOT (attack.eot_samples) to follow the
expected gradient rather than one noisy draw's, and against quantisation, whose gradient is
zero almost everywhere, BPDA (attack.bpda=true), which differentiates it as the identity.
Clean accuracy is the defended model's too.
"""

import torch
from torch import nn

from robustbench_cli import attacks, checks
from robustbench_cli.attacks.bpda import NonDifferentiable
from robustbench_cli.errors import UserError
from robustbench_cli.evaluation.view import EvalView
from robustbench_cli.reporting.rows import uses_eot

MAX_BITS = 8  # the images are 8-bit: more bits change nothing


class InputNoise(nn.Module):
    """x + N(0, sigma^2 I), clamped to [0, 1] (noise_train's noise), drawn anew every pass.

    Seeded from the run seed, not per point: the model is never told which points it sees,
    and noise keyed to the image itself would make the defense deterministic. One generator
    per device, seeded with `seed`, draws every forward pass's noise in turn, so the same
    eval command gives the same numbers (on the same kind of device); another batch size,
    attack list or a resumed run draws differently."""

    def __init__(self, sigma: float, seed: int):
        super().__init__()
        self.sigma, self.seed = sigma, seed
        self._generators: dict[torch.device, torch.Generator] = {}

    def forward(self, x):
        generator = self._generators.get(x.device)
        if generator is None:
            generator = self._generators[x.device] = torch.Generator(x.device).manual_seed(self.seed)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return (x + self.sigma * noise).clamp(0, 1)


class BitDepth(NonDifferentiable):
    """round(x * (2^bits - 1)) / (2^bits - 1): each pixel on one of 2^bits levels (Xu et al.
    2018's bit-depth reduction). Its gradient is zero almost everywhere, which masks plain
    gradient attacks; BPDA passes it straight through."""

    def __init__(self, bits: int):
        super().__init__()
        self.levels = 2**bits - 1

    def transform(self, x):
        return torch.round(x * self.levels) / self.levels


def input_noise_view(cfg, target, specs, overrides) -> EvalView:
    sigma = checks.in_interval("defense.sigma", cfg.defense.get("sigma"), 0, 1, low_closed=False)
    _note_unadapted(specs, lambda name, params: not uses_eot(name, params),
                    "attack.eot_samples=K (EOT)", "each gradient follows a single noise draw")
    return _view(target, specs, InputNoise(sigma, cfg.seed), "input_noise", {"sigma": sigma})


def bit_depth_view(cfg, target, specs, overrides) -> EvalView:
    bits = checks.positive_int("defense.bits", cfg.defense.get("bits"))
    if bits > MAX_BITS:
        raise UserError(f"defense.bits must be at most {MAX_BITS} (8-bit images), got {bits}")
    _note_unadapted(specs, lambda name, params: not params.get("bpda"), "attack.bpda=true (BPDA)",
                    "the quantisation's gradient is zero almost everywhere, masking the attack")
    return _view(target, specs, BitDepth(bits), "bit_depth", {"bits": bits})


def _note_unadapted(specs, unadapted, option: str, why: str) -> None:
    """A one-line hint naming the gradient attacks that run without the adaptive `option`."""
    names = [spec.name for spec in specs if spec.name != "none" and unadapted(spec.name, spec.params)
             and attacks.attack_class(spec.name).uses_gradients]
    if names:
        print(f"note: {', '.join(names)} without {option}: {why}")


def _view(target, specs, preprocessing: nn.Module, name: str, params: dict) -> EvalView:
    """preprocessing -> the target classifier, attacked as a whole."""
    model = nn.Sequential(preprocessing, target.model).eval()
    classifier_defense = dict(target.meta.get("defense", {"name": "none"}))
    identity = {"defense": name, "threat": "full",
                "defense_params": {**params, "classifier_defense": classifier_defense}}
    return EvalView(model, specs, identity)
