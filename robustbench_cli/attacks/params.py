"""The checks only attacks have: eps (whose bound depends on the norm) and label. Every other
attack parameter is checked with the shared rules in robustbench_cli.checks.

Each check returns the typed value or raises UserError with a one-line reason; `build`
prefixes the attack's name.
"""

from robustbench_cli.checks import non_negative_number
from robustbench_cli.errors import UserError

LABEL_CHOICES = ("true", "pred")
NORMS = ("linf", "l2")  # the balls of attacks that take a `norm` parameter
PER_PIXEL_NORMS = {"linf": "L-inf", "l0": "L0"}  # norm -> its name in messages


def eps(value, norm: str | None) -> float:
    """eps >= 0; where it bounds each pixel's change (L-inf, and L0's per-feature change) it
    is also at most 1, the width of [0, 1]."""
    value = non_negative_number("eps", value)
    if norm in PER_PIXEL_NORMS and value > 1:
        raise UserError(f"eps must be <= 1 for an {PER_PIXEL_NORMS[norm]} attack on [0, 1] images, "
                        f"got {value}")
    return value


def label(value) -> str:
    """'true' (the given labels) or 'pred' (the model's clean prediction).

    YAML reads `label: true` as a bool, so True is accepted too."""
    choice = "true" if value is True else str(value).lower()
    if choice not in LABEL_CHOICES:
        raise UserError(f"label must be one of {', '.join(LABEL_CHOICES)}, got {value!r}")
    return choice

