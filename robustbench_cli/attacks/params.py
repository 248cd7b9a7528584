"""Checks for attack parameters: they arrive untyped from configs and overrides.

Each check returns the typed value or raises UserError with a one-line reason; `build`
prefixes the attack's name.
"""

import math
from fractions import Fraction

from robustbench_cli.errors import UserError

LABEL_CHOICES = ("true", "pred")
PER_PIXEL_NORMS = {"linf": "L-inf", "l0": "L0"}  # norm -> its name in messages


def number(key: str, value) -> float:
    """A float from 0.03, 1, '0.03' or a fraction string like '8/255'."""
    if isinstance(value, bool):
        raise UserError(f"{key} must be a number, got {value!r}")
    parsed = None
    if isinstance(value, (int, float)):
        parsed = float(value)
    elif isinstance(value, str):
        try:
            parsed = float(Fraction(value.replace(" ", "")))
        except (ValueError, ZeroDivisionError):
            pass
    if parsed is not None and math.isfinite(parsed):
        return parsed
    if parsed is not None:
        raise UserError(f"{key} must be a finite number, got {value!r}")
    raise UserError(f"{key} must be a number or a fraction like 8/255, got {value!r}")


def eps(value, norm: str | None) -> float:
    """eps >= 0; where it bounds each pixel's change (L-inf, and L0's per-feature change) it
    is also at most 1, the width of [0, 1]."""
    value = number("eps", value)
    if value < 0:
        raise UserError(f"eps must be >= 0, got {value}")
    if norm in PER_PIXEL_NORMS and value > 1:
        raise UserError(f"eps must be <= 1 for an {PER_PIXEL_NORMS[norm]} attack on [0, 1] images, "
                        f"got {value}")
    return value


def positive_number(key: str, value) -> float:
    value = number(key, value)
    if value <= 0:
        raise UserError(f"{key} must be > 0, got {value}")
    return value


def positive_int(key: str, value) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UserError(f"{key} must be a positive integer, got {value!r}")
    return value


def non_negative_int(key: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"{key} must be a non-negative integer, got {value!r}")
    return value


def flag(key: str, value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise UserError(f"{key} must be true or false, got {value!r}")


def label(value) -> str:
    """'true' (the given labels) or 'pred' (the model's clean prediction).

    YAML reads `label: true` as a bool, so True is accepted too."""
    choice = "true" if value is True else str(value).lower()
    if choice not in LABEL_CHOICES:
        raise UserError(f"label must be one of {', '.join(LABEL_CHOICES)}, got {value!r}")
    return choice
