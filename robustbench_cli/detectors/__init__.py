"""Adversarial-input detectors: they leave the classifier alone and decide per input whether
to reject it. `build(name, model, **params)` gives a `Detector` (see `detectors.base`).

Importing this package is cheap (no torch): a detector's module loads when it is built.
"""

from importlib import import_module

from robustbench_cli.errors import UserError
from robustbench_cli.registry import construct

# Config name -> "module:Class" under robustbench_cli.detectors.
_REGISTRY = {
    "confidence_ratio": "confidence:ConfidenceRatio",
    "mutation": "mutation:MutationDetector",
}
DETECTOR_NAMES = tuple(sorted(_REGISTRY))

__all__ = ["DETECTOR_NAMES", "build"]


def build(name: str, model, /, **params):
    """The detector `name` guarding `model`, its parameters checked (UserError on bad input).

    `params` are the detector's config keys plus what the runner knows (`head`, `seed`); a
    `name` key (configs carry it) is ignored.
    """
    if name not in _REGISTRY:
        raise UserError(f"unknown detector {name!r}; choose from: {', '.join(DETECTOR_NAMES)}")
    module, cls_name = _REGISTRY[name].split(":")
    cls = getattr(import_module(f"{__name__}.{module}"), cls_name)
    return construct("detector", name, cls, model, params)
