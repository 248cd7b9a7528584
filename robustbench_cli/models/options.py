"""Reading and checking model config values; every problem is a one-line UserError."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn

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


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def required(cfg, key: str):
    """cfg[key], or a UserError naming the missing key."""
    value = cfg.get(key)
    if value is None:
        raise UserError(f"model.{key} is required for model={cfg.get('name')}")
    return value


def positive_int(value, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UserError(f"model.{key} must be a positive integer, got {value!r}")
    return value


def positive_int_list(value, key: str, allow_empty: bool = False) -> list[int]:
    """A list of positive integers (a Hydra ListConfig counts as a list)."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise UserError(f"model.{key} must be a list of positive integers, got {value!r}")
    items = list(value)
    if not items and not allow_empty:
        raise UserError(f"model.{key} must not be empty")
    for item in items:
        if not isinstance(item, int) or isinstance(item, bool) or item < 1:
            raise UserError(f"model.{key} must be a list of positive integers, got {items!r}")
    return items


def read_arch_options(cfg) -> ArchOptions:
    """width, activation and activation_beta, checked."""
    width = cfg.get("width", 1.0)
    if not _is_number(width) or width <= 0:
        raise UserError(f"model.width must be a number > 0, got {width!r}")
    activation = cfg.get("activation", "relu")
    if activation not in ACTIVATION_NAMES:
        raise UserError(
            f"unknown model.activation {activation!r}; known: {', '.join(ACTIVATION_NAMES)}"
        )
    beta = cfg.get("activation_beta", DEFAULT_BETA)
    if not _is_number(beta) or beta < 0:
        raise UserError(f"model.activation_beta must be a number >= 0, got {beta!r}")
    return ArchOptions(float(width), activation, activation_factory(activation, float(beta)))
