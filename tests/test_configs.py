"""Every config group option and experiment composes, for every command."""

from importlib import resources

import pytest
from hydra import compose, initialize_config_module

CONF = resources.files("robustbench_cli.conf")


def options(group: str) -> list[str]:
    return sorted(p.name[:-5] for p in (CONF / group).iterdir() if p.name.endswith(".yaml"))


GROUPS = {"train": ["model", "dataset", "defense", "trainer", "optim", "logger"],
          "eval": ["model", "dataset", "attack", "defense", "logger"],
          "detect": ["model", "dataset", "attack", "detector", "defense", "logger"],
          "analyze": ["model", "dataset", "attack", "defense"]}


def test_every_group_is_used_by_some_command():
    groups = {p.name for p in CONF.iterdir() if p.is_dir() and not p.name.startswith("_")}
    # hydra/: Hydra's own groups (hydra/launcher, for every command)
    assert groups - {"experiment", "hydra"} == {group for used in GROUPS.values() for group in used}


@pytest.mark.parametrize("config_name", GROUPS)
def test_every_group_option_composes_and_passes_the_commands_checks(config_name):
    from robustbench_cli.config import check_train_config
    from robustbench_cli.defenses.registry import defense
    from robustbench_cli.errors import UserError

    with initialize_config_module("robustbench_cli.conf", version_base=None):
        for group in GROUPS[config_name]:
            for option in options(group):
                cfg = compose(config_name, overrides=[f"{group}={option}"])
                assert cfg[group] is not None
                if config_name != "train":
                    continue
                if group == "defense" and not defense(option).trains:  # eval-time only
                    with pytest.raises(UserError, match="is an eval-time defense"):
                        check_train_config(cfg)
                else:
                    check_train_config(cfg)  # the checks `robust train` runs before any data loads


@pytest.mark.parametrize("config_name", GROUPS)
def test_every_experiment_composes(config_name):
    experiments = options("experiment")
    assert experiments, "experiments/ ships no experiment"
    with initialize_config_module("robustbench_cli.conf", version_base=None):
        for name in experiments:
            cfg = compose(config_name, overrides=[f"experiment={name}"])
            assert cfg.model.name and cfg.dataset.name


def test_shipped_groups_are_the_documented_ones():
    assert options("model") == ["cnn", "inception_v3", "mlp", "vgg11", "vgg13", "vgg16", "vgg19"]
    assert options("dataset") == ["cifar10", "fashion_mnist", "image_folder", "imagenet_subset",
                                  "mnist"]
    assert {"none", "fgsm", "pgd_linf", "pgd_l2"} <= set(options("attack"))
    assert options("trainer") == ["cpu", "ddp", "ddp_cpu", "gpu"]


def test_attack_names_match_the_attack_registry():
    from robustbench_cli.attacks import ATTACK_NAMES

    assert set(options("attack")) <= set(ATTACK_NAMES) | {"none"}
