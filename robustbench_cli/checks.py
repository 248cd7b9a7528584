"""The shared rules for values users type: every config group checks its keys with these.

Hydra hands values over untyped (`eps=0` is an int, `eps=8/255` a string, `x=nan` a float
nan), so each rule is `check(key, value) -> typed value` and raises UserError with one line
naming the full key: `{key} must be {what is expected}, got {value}`. Every number is
checked for being finite; bools are never numbers. No torch import: these run before
anything heavy is loaded.
"""

import math
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from robustbench_cli.errors import UserError


class Refused(UserError):
    """A value a rule refused: `{key} must be {expected}, got {got}` (one line)."""

    def __init__(self, key: str, expected: str, got: str):
        super().__init__(f"{key} must be {expected}, got {got}")
        self.key, self.expected, self.got = key, expected, got


def plain(value):
    """OmegaConf containers as plain (resolved) dicts and lists; anything else as it is."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def is_int(value) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def number(key: str, value) -> float:
    """A finite float from 0.03, 1, '0.03' or a fraction string like '8/255'."""
    if isinstance(value, bool):
        raise Refused(key, "a number", repr(value))
    parsed = None
    if isinstance(value, (int, float)):
        parsed = float(value)
    elif isinstance(value, str):
        try:
            parsed = float(Fraction(value.replace(" ", "")))
        except (ValueError, ZeroDivisionError):
            pass
    if parsed is None:
        raise Refused(key, "a number or a fraction like 8/255", repr(value))
    if not math.isfinite(parsed):
        raise Refused(key, "a finite number", repr(value))
    return parsed


def positive_number(key: str, value) -> float:
    value = number(key, value)
    if value <= 0:
        raise Refused(key, "> 0", str(value))
    return value


def non_negative_number(key: str, value) -> float:
    value = number(key, value)
    if value < 0:
        raise Refused(key, ">= 0", str(value))
    return value


def in_interval(key: str, value, low: float, high: float, low_closed: bool = True,
                high_closed: bool = True, *, wording: str | None = None) -> float:
    """A number between low and high, each end included (closed) or not. The message says
    `in [low, high)` (or `wording`, where a group words it its own way)."""
    value = number(key, value)
    above = value >= low if low_closed else value > low
    below = value <= high if high_closed else value < high
    if not (above and below):
        interval = f"{'[' if low_closed else '('}{low:g}, {high:g}{']' if high_closed else ')'}"
        raise Refused(key, wording or f"in {interval}", str(value))
    return value


def fraction(key: str, value) -> float:
    """A number in [0, 1]."""
    return in_interval(key, value, 0, 1)


def open_fraction(key: str, value) -> float:
    """A number strictly between 0 and 1 (a rate, a probability, a share of the data)."""
    return in_interval(key, value, 0, 1, False, False, wording="between 0 and 1 (exclusive)")


def _integer(key: str, value, minimum: int, expected: str) -> int:
    if isinstance(value, float) and value.is_integer():  # 3.0 is 3 (nan and inf are not)
        value = int(value)
    if not is_int(value) or value < minimum:
        raise Refused(key, expected, repr(value))
    return value


def positive_int(key: str, value) -> int:
    """An integer >= 1 (a float like 3.0 counts as 3)."""
    return _integer(key, value, 1, "a positive integer")


def non_negative_int(key: str, value) -> int:
    """An integer >= 0 (a float like 3.0 counts as 3)."""
    return _integer(key, value, 0, "a non-negative integer")


def flag(key: str, value) -> bool:
    """true or false: a bool, or the words as typed."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise Refused(key, "true or false", repr(value))


def choice(key: str, value, choices) -> str:
    """One of `choices` (strings, compared case-insensitively); returns the lower-case word."""
    picked = value.lower() if isinstance(value, str) else None
    if picked not in choices:
        raise Refused(key, f"one of {', '.join(choices)}", repr(value))
    return picked


def optional(check: Callable) -> Callable:
    """`check`, letting null (None) through; a refusal says `... or null`."""

    def check_optional(key: str, value, *args, **kwargs):
        if value is None:
            return None
        try:
            return check(key, value, *args, **kwargs)
        except Refused as refused:
            raise Refused(key, f"{refused.expected} or null", refused.got) from None

    check_optional.__name__ = f"optional_{getattr(check, '__name__', 'check')}"
    return check_optional


def checkpoint_paths(key: str, value) -> list[Path]:
    """One checkpoint path, or a non-empty list of them (an ensemble)."""
    value = plain(value)
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items or not all(isinstance(item, (str, Path)) and str(item) for item in items):
        raise Refused(key, "a checkpoint path or a list of paths", repr(value))
    return [Path(item) for item in items]
