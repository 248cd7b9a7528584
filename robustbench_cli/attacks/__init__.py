"""Attacks: `build(name, model, **params)` gives an `Attack`; `attack(x, y) -> x_adv`.

Importing this package is cheap (no torch): an attack's module loads when it is built.
"""

from importlib import import_module

from robustbench_cli.errors import UserError
from robustbench_cli.registry import construct

# Config name -> "module:Class" under robustbench_cli.attacks.
_REGISTRY = {
    "none": "identity:NoAttack",
    "fgsm": "one_step:FGSM",
    "fgsm_pred": "one_step:FGSMPred",
    "step_ll": "one_step:StepLL",
    "step_rnd": "one_step:StepRnd",
    "fast_entropy": "one_step:FastEntropy",
    "fast_grad_l2": "one_step:FastGradL2",
    "fast_grad_linf": "one_step:FastGradLinf",
    "rfgsm": "rfgsm:RFGSM",
    "bim": "iterative:BIM",
    "iter_ll": "iterative:IterLL",
    "pgd_linf": "iterative:PGDLinf",
    "pgd_l2": "iterative:PGDL2",
    "jsma": "jsma:JSMA",
    "nes": "nes:NES",
    "gaussian": "noise:Gaussian",
    "random_sign": "noise:RandomSign",
    "trunc_normal": "noise:TruncNormal",
    "transfer": "transfer:Transfer",
    "saved": "saved:Saved",
    "apgd": "apgd:APGD",
    "square": "square:Square",
    "fab": "fab:FAB",
    "autoattack": "autoattack:AutoAttack",
    "torchattacks": "torchattacks_wrapper:TorchAttacks",
}
ATTACK_NAMES = tuple(sorted(_REGISTRY))
# Parameters of every attack, handled once by `Attack.adapt` rather than in each signature.
ADAPTIVE_PARAMS = ("eot_samples", "bpda")

__all__ = ["ADAPTIVE_PARAMS", "ATTACK_NAMES", "Attack", "build"]


def __getattr__(name: str):
    if name == "Attack":  # lazily, so `import robustbench_cli.attacks` does not load torch
        from robustbench_cli.attacks.base import Attack

        return Attack
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def attack_class(name: str) -> type:
    """The class registered as `name` (its module is imported now)."""
    if name not in _REGISTRY:
        raise UserError(f"unknown attack {name!r}; choose from: {', '.join(ATTACK_NAMES)}")
    module, cls = _REGISTRY[name].split(":")
    return getattr(import_module(f"{__name__}.{module}"), cls)


def build(name: str, model, /, **params):
    """The attack `name` against `model`, its parameters checked (UserError on bad input).

    `params` are the attack's config keys plus `eps`; a `name` key (configs carry it) is
    ignored. Any attack takes ADAPTIVE_PARAMS too (see `Attack.adapt`).
    """
    cls = attack_class(name)
    adaptive = {key: params.pop(key) for key in ADAPTIVE_PARAMS if key in params}
    attack = construct("attack", name, cls, model, params)
    try:
        return attack.adapt(**adaptive)
    except UserError as error:
        raise UserError(f"attack {name}: {error}") from None
