"""Building a registered component (attack, detector) from untyped config parameters."""

import inspect

from robustbench_cli.errors import UserError


def construct(kind: str, name: str, cls, model, params: dict):
    """`cls(model, **params)` with the keys checked against its signature; every UserError is
    prefixed with `kind name:`. A `name` key (configs carry it) is ignored."""
    params.pop("name", None)
    signature = inspect.signature(cls).parameters
    valid = [key for key in signature if key != "model"]
    unknown = [key for key in params if key not in valid]
    if unknown:
        raise UserError(f"{kind} {name}: unknown parameter {unknown[0]!r}; valid: {', '.join(valid)}")
    missing = [key for key in valid
               if key not in params and signature[key].default is inspect.Parameter.empty]
    if missing:
        raise UserError(f"{kind} {name}: missing parameter {missing[0]!r}")
    try:
        return cls(model, **params)
    except UserError as error:
        raise UserError(f"{kind} {name}: {error}") from None
