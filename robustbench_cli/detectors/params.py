"""Checks for detector parameters beyond the attacks' number checks (which are reused)."""

from robustbench_cli.attacks.params import number
from robustbench_cli.errors import UserError


def open_fraction(key: str, value) -> float:
    """A number strictly between 0 and 1 (a rate, a probability, a fraction of the data)."""
    value = number(key, value)
    if not 0 < value < 1:
        raise UserError(f"{key} must be between 0 and 1 (exclusive), got {value}")
    return value


def optional_number(key: str, value) -> float | None:
    return None if value is None else number(key, value)


def choice(key: str, value, choices: tuple[str, ...]) -> str:
    """One of `choices` (case-insensitive)."""
    picked = str(value).lower() if isinstance(value, str) else None
    if picked not in choices:
        raise UserError(f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return picked
