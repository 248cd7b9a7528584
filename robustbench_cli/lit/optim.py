"""The optimizer and learning-rate schedule of every fit, built from the `optim` config.

`optim=adam|sgd|rmsprop` picks conf/optim/NAME.yaml (the optimizer's keys); the schedule
keys are the same for every optimizer and live in conf/train.yaml:
`optim.schedule=none|cosine|step|exponential|plateau`. `check_optim` types and checks the
config (one-line UserError); `configure` returns what a LightningModule's
`configure_optimizers` returns. Schedules step once per epoch. No torch import at module
level: the config checks run before anything heavy is loaded.
"""

from robustbench_cli.checks import (
    choice,
    flag,
    in_interval,
    non_negative_int,
    non_negative_number,
    optional,
    positive_int,
    positive_number,
)
from robustbench_cli.errors import UserError

COMMON_KEYS = ("name", "lr", "weight_decay")
OPTIMIZERS = {  # name -> its keys besides COMMON_KEYS
    "adam": (),
    "sgd": ("momentum", "nesterov"),
    "rmsprop": ("alpha", "eps", "momentum", "centered"),
}
SCHEDULE_KEYS = ("schedule", "min_lr", "step_size", "gamma", "factor", "patience", "max_drops")
SCHEDULES = ("none", "cosine", "step", "exponential", "plateau")


def _in_unit(low_closed: bool, high_closed: bool):
    """A check for a number in the unit interval, each end open or closed."""
    return lambda key, value: in_interval(key, value, 0, 1, low_closed, high_closed)


CHECKS = {  # key -> check(full key, value) -> typed value
    "lr": positive_number,
    "weight_decay": non_negative_number,
    "momentum": _in_unit(True, False),
    "nesterov": flag,
    "alpha": _in_unit(True, False),
    "eps": positive_number,
    "centered": flag,
    "min_lr": non_negative_number,
    "step_size": positive_int,
    "gamma": _in_unit(False, True),  # a decay: 1 keeps the lr
    "factor": _in_unit(False, False),  # torch refuses a factor of 1 or more
    "patience": non_negative_int,
    "max_drops": optional(non_negative_int),
}


def _unknown_key(key: str, value, name: str) -> UserError:
    from robustbench_cli.config import renamed_key

    message = renamed_key(f"optim.{key}", value)
    if message:
        return UserError(message)
    owners = [other for other, keys in OPTIMIZERS.items() if key in keys]
    if owners:  # left over from another optimizer's file
        return UserError(f"optim.{key} is a setting of optim={'/'.join(owners)}, not of optim={name}")
    keys = ", ".join((*COMMON_KEYS[1:], *OPTIMIZERS[name], *SCHEDULE_KEYS))
    return UserError(f"optim.{key} is not a key of optim={name} (its keys: {keys})")


def check_optim(optim: dict) -> dict:
    """The optim config typed and checked: a plain dict with every key, or a one-line UserError."""
    optim = dict(optim)
    name = optim.get("name")
    if name not in OPTIMIZERS:
        raise UserError(f"optim must be one of {', '.join(sorted(OPTIMIZERS))} (optim=NAME), got {name!r}")
    allowed = (*COMMON_KEYS, *OPTIMIZERS[name], *SCHEDULE_KEYS)
    for key, value in optim.items():
        if key not in allowed:
            raise _unknown_key(key, value, name)
    missing = [key for key in allowed if key not in optim]
    if missing and missing[0] in OPTIMIZERS[name]:  # optim.name set over another optimizer's file
        raise UserError(f"optim={name} needs optim.{missing[0]}: choose the optimizer with optim={name} "
                        f"(an experiment file: `- /optim/{name}@optim` in its defaults), not by setting "
                        f"optim.name")
    if missing:
        raise UserError(f"optim.{missing[0]} is missing (conf/train.yaml sets every schedule key)")
    checked = {"name": name}
    for key in allowed[1:]:
        if key != "schedule":
            checked[key] = CHECKS[key](f"optim.{key}", optim[key])
    checked["schedule"] = choice("optim.schedule", optim["schedule"], SCHEDULES)
    if checked["min_lr"] > checked["lr"]:
        raise UserError(f"optim.min_lr must be <= optim.lr ({checked['lr']}), got {checked['min_lr']}")
    if checked.get("nesterov") and checked["momentum"] == 0:
        raise UserError("optim.nesterov=true needs optim.momentum > 0")
    return checked


def plateau_floor(optim: dict) -> float:
    """The plateau schedule's lowest lr: min_lr, raised to lr * factor^max_drops when that is
    higher (computed as torch steps it, one multiplication per drop, so the floor is hit exactly
    and no further drop happens)."""
    floor = optim["lr"]
    if optim["max_drops"] is None:
        return optim["min_lr"]
    for _ in range(optim["max_drops"]):
        floor *= optim["factor"]
    return max(optim["min_lr"], floor)


def configure(params, optim: dict, max_epochs: int, monitor: str | None) -> dict:
    """Lightning's configure_optimizers answer for `params` under the optim config:
    {"optimizer": ...} and, with a schedule, {"lr_scheduler": {"scheduler": ..., "interval": "epoch"}}
    (plus "monitor" for plateau: the metric whose stall drops the lr; None = there is none)."""
    import torch

    o = check_optim(optim)
    params = list(params)
    if o["name"] == "sgd":
        optimizer = torch.optim.SGD(params, lr=o["lr"], momentum=o["momentum"],
                                    weight_decay=o["weight_decay"], nesterov=o["nesterov"])
    elif o["name"] == "rmsprop":
        optimizer = torch.optim.RMSprop(params, lr=o["lr"], alpha=o["alpha"], eps=o["eps"],
                                        weight_decay=o["weight_decay"], momentum=o["momentum"],
                                        centered=o["centered"])
    else:
        optimizer = torch.optim.Adam(params, lr=o["lr"], weight_decay=o["weight_decay"])
    schedules = torch.optim.lr_scheduler
    entry = {"interval": "epoch", "frequency": 1}
    if o["schedule"] == "none":
        return {"optimizer": optimizer}
    if o["schedule"] == "cosine":
        epochs = positive_int("trainer.max_epochs", max_epochs)
        entry["scheduler"] = schedules.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=o["min_lr"])
    elif o["schedule"] == "step":
        entry["scheduler"] = schedules.StepLR(optimizer, step_size=o["step_size"], gamma=o["gamma"])
    elif o["schedule"] == "exponential":
        entry["scheduler"] = schedules.ExponentialLR(optimizer, gamma=o["gamma"])
    else:
        if monitor is None:
            raise UserError("optim.schedule=plateau watches the validation loss: this fit has no "
                            "validation (dataset.val_fraction > 0 gives it one)")
        # eps=0: every drop down to the floor counts, however small the lr
        entry["scheduler"] = schedules.ReduceLROnPlateau(
            optimizer, mode="min", factor=o["factor"], patience=o["patience"],
            min_lr=plateau_floor(o), eps=0.0)
        entry["monitor"] = monitor
    return {"optimizer": optimizer, "lr_scheduler": entry}
