"""Reading and checking model config values; every problem is a one-line UserError."""

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from robustbench_cli.checks import choice, is_int, non_negative_number, plain, positive_number
from robustbench_cli.errors import UserError
from robustbench_cli.models.activations import ACTIVATION_NAMES, DEFAULT_BETA, activation_factory


@dataclass(frozen=True)
class ArchOptions:
    """The options every architecture honours."""

    width: float  # multiplies channels and hidden units
    activation: str
    make_activation: Callable[[], nn.Module]

    def scaled(self, units: int) -> int:
        """`units` times the width multiplier, never below one unit."""
        return max(1, round(units * self.width))


def required(cfg, key: str):
    """cfg[key], or a UserError naming the missing key."""
    value = cfg.get(key)
    if value is None:
        raise UserError(f"model.{key} is required for model={cfg.get('name')}")
    return value


def positive_int_list(key: str, value, allow_empty: bool = False) -> list[int]:
    """A list of positive integers (a Hydra ListConfig counts as a list)."""
    items = plain(value)
    items = list(items) if isinstance(items, tuple) else items
    if not isinstance(items, list) or not all(is_int(item) and item >= 1 for item in items):
        raise UserError(f"{key} must be a list of positive integers, got {items!r}")
    if not items and not allow_empty:
        raise UserError(f"{key} must not be empty")
    return items


def read_arch_options(cfg) -> ArchOptions:
    """width, activation and activation_beta, checked."""
    width = positive_number("model.width", cfg.get("width", 1.0))
    activation = choice("model.activation", cfg.get("activation", "relu"), ACTIVATION_NAMES)
    beta = non_negative_number("model.activation_beta", cfg.get("activation_beta", DEFAULT_BETA))
    return ArchOptions(width, activation, activation_factory(activation, beta))
