"""Typing and validation of the values users type on the command line.

Hydra hands overrides over untyped (`eps=0` is an int, `eps=8/255` a string), so every
value the tool relies on is checked early, with a one-line UserError: by the shared rules in
robustbench_cli.checks, and here for what is the command config's own (eps lists, the train
config's cross-key checks, the attacks named on the command line, keys that were renamed).
"""

from importlib import resources

from omegaconf import DictConfig, ListConfig, OmegaConf

from robustbench_cli.checks import non_negative_int, non_negative_number, positive_int
from robustbench_cli.errors import UserError


def parse_eps(value) -> list[float]:
    """eps as a sorted list without duplicates; a single value gives a one-item list."""
    items = list(value) if isinstance(value, (list, tuple, ListConfig)) else [value]
    if not items:
        raise UserError("eps must not be an empty list")
    return sorted({non_negative_number("eps", item) for item in items})


def _overrides(task_overrides) -> list:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides(list(task_overrides))


def explicit_choices(task_overrides) -> dict[str, object]:
    """Config-group choices the user typed (`model=cnn` -> {'model': 'cnn'}); lists stay lists."""
    return {o.key_or_group: o.value() for o in _overrides(task_overrides)
            if o.package is None and "." not in o.key_or_group}


def attack_configs(cfg: DictConfig, task_overrides) -> list[dict]:
    """One config dict per attack named on the command line.

    `attack=[pgd_linf,fgsm]` makes Hydra merge both files into one node, so for a list each
    attack's own file is read again and the user's `attack.KEY=VALUE` overrides are applied
    to every listed attack that has KEY.
    """
    names = explicit_choices(task_overrides).get("attack")
    if not isinstance(names, list):
        return [OmegaConf.to_container(cfg.attack, resolve=True)]
    if not names:
        raise UserError("attack=[] names no attack")
    params = {o.key_or_group.split(".", 1)[1]: o.value() for o in _overrides(task_overrides)
              if o.key_or_group.startswith("attack.")}
    configs = []
    for name in dict.fromkeys(names):  # keep order, drop repeats
        config = load_group_option("attack", str(name))
        config.update({k: v for k, v in params.items() if k in config})
        configs.append(config)
    return configs


def load_group_option(group: str, name: str) -> dict:
    """Read conf/GROUP/NAME.yaml as a plain dict."""
    path = resources.files("robustbench_cli.conf") / group / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"unknown {group} '{name}'")
    return OmegaConf.to_container(OmegaConf.create(path.read_text()), resolve=True)


def check_train_config(cfg: DictConfig) -> None:
    from robustbench_cli.data.settings import val_fraction
    from robustbench_cli.defenses.registry import defense
    from robustbench_cli.lit.optim import check_optim
    from robustbench_cli.models.options import read_arch_options

    defense(cfg.defense.name).check_trainable()
    non_negative_int("seed", cfg.seed)
    if "val_fraction" in cfg.dataset:  # typed here: a fraction string (1/10) becomes its number
        cfg.dataset.val_fraction = val_fraction(cfg.dataset.val_fraction)
    _check_optim_choice(cfg.optim.get("name"))
    optim = check_optim(OmegaConf.to_container(cfg.optim, resolve=True))
    if optim["schedule"] == "plateau" and cfg.defense.name != "hgd" and (
            not cfg.dataset.get("val_fraction") or cfg.trainer.get("limit_val_batches") == 0):
        # (a denoiser without validation watches its training loss instead)
        raise UserError("optim.schedule=plateau watches the validation loss: it needs "
                        "dataset.val_fraction > 0 (and validation batches)")
    positive_int("trainer.max_epochs", cfg.trainer.max_epochs)
    if not defense(cfg.defense.name).wraps:  # a classifier is built from cfg.model: check it first
        read_arch_options(cfg.model)


def _check_optim_choice(name: str) -> None:
    """`optim=X` typed on the command line must be the optimizer that runs: an experiment that
    includes another optimizer's file (`- /optim/sgd@optim`) would otherwise win silently."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    typed = explicit_choices(HydraConfig.get().overrides.task).get("optim")
    if typed is not None and typed != name:
        raise UserError(f"optim={typed} is overridden by the experiment, which includes the {name} "
                        f"optimizer's file: change its keys (optim.lr=...) or leave the experiment out")


def recorded_dataset_config(dataset: DictConfig) -> dict:
    """The dataset config as a checkpoint records it: root made absolute, so an eval run from
    another directory finds the same data."""
    import os

    recorded = OmegaConf.to_container(dataset, resolve=True)
    if recorded.get("root"):
        recorded["root"] = os.path.abspath(os.path.expanduser(recorded["root"]))
    return recorded


# Keys that are gone -> the spelling that replaced them ({value}: the value the user gave).
RENAMED = {
    "optim.name": "optim={value}",
    "optim.scheduler": "optim.schedule={value}",
    "defense.lr_final": "optim.schedule=plateau optim.min_lr={value} (the lr drops by optim.factor "
                        "each time the loss stalls, down to min_lr; one drop: optim.max_drops=1)",
    "defense.lr_patience": "optim.schedule=plateau optim.patience={value}",
    "attack.threat": "defense.threat={value} (a threat model belongs to the defense that wraps the "
                     "classifier at eval time: defense=hgd)",
}


def renamed_key(key: str, value) -> str | None:
    """The one-line message for a key that is gone (None for any other key)."""
    if key not in RENAMED:
        return None
    return f"{key} is gone: use {RENAMED[key].format(value=value)}"


def renamed_override(args: list[str]) -> str | None:
    """The message for the first command-line override that sets a key that is gone (checked
    before Hydra composes: it would refuse most of them as unknown without naming the new key)."""
    for arg in args:
        key, equals, value = arg.partition("=")
        key = key.lstrip("+~")
        if (equals or arg.startswith("~")) and key in RENAMED:
            return renamed_key(key, value or "...")
    return None
