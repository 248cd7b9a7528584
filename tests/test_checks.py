"""The shared rules for typed values (robustbench_cli.checks), and through the real CLI that a
non-finite number is a one-line error before anything trains or loads."""

from pathlib import Path

import pytest
from helpers import robust, robust_many
from omegaconf import OmegaConf

from robustbench_cli import checks
from robustbench_cli.errors import UserError

NOT_FINITE = [float("nan"), float("inf"), float("-inf"), "-inf", "nan", "inf"]
NOT_NUMBERS = [True, False, None, "lots", [1], {"a": 1}, "1/0"]


def refused(check, value, *args, match=None) -> str:
    """The one-line message of the UserError `check("group.key", value, *args)` raises."""
    with pytest.raises(UserError, match=match) as caught:
        check("group.key", value, *args)
    message = str(caught.value)
    assert message.startswith("group.key must be ") and "\n" not in message, message
    return message


@pytest.mark.parametrize(("value", "expected"), [
    (0, 0.0), (3, 3.0), (0.25, 0.25), ("0.03", 0.03), ("8/255", 8 / 255), (" 1 / 4 ", 0.25), (-2, -2.0)])
def test_number_types_numbers_and_fractions(value, expected):
    result = checks.number("k", value)
    assert result == pytest.approx(expected) and type(result) is float


@pytest.mark.parametrize("value", NOT_FINITE)
def test_every_number_rule_refuses_non_finite_values(value):
    for check in (checks.number, checks.positive_number, checks.non_negative_number, checks.fraction,
                  checks.open_fraction):
        refused(check, value)
    refused(checks.in_interval, value, -10, 10)
    refused(checks.positive_int, value)
    refused(checks.non_negative_int, value)
    refused(checks.optional(checks.number), value)


def test_a_non_finite_float_is_named_as_such():
    assert refused(checks.number, float("nan")) == "group.key must be a finite number, got nan"
    assert "finite" in refused(checks.positive_number, float("inf"))


@pytest.mark.parametrize("value", NOT_NUMBERS)
def test_number_refuses_what_is_not_a_number(value):
    refused(checks.number, value, match="must be a number")


def test_signs():
    assert checks.positive_number("k", "1/2") == 0.5
    assert checks.non_negative_number("k", 0) == 0.0
    assert refused(checks.positive_number, 0) == "group.key must be > 0, got 0.0"
    assert refused(checks.non_negative_number, -1) == "group.key must be >= 0, got -1.0"


@pytest.mark.parametrize(("low_closed", "high_closed", "good", "bad", "interval"), [
    (True, True, [0, 0.5, 1], [-0.1, 1.1], "[0, 1]"),
    (True, False, [0, 0.99], [1, -0.1], "[0, 1)"),
    (False, True, [0.01, 1], [0, 1.5], "(0, 1]"),
    (False, False, [0.5], [0, 1], "(0, 1)"),
])
def test_in_interval_ends(low_closed, high_closed, good, bad, interval):
    for value in good:
        assert checks.in_interval("k", value, 0, 1, low_closed, high_closed) == float(value)
    for value in bad:
        message = refused(checks.in_interval, value, 0, 1, low_closed, high_closed)
        assert message == f"group.key must be in {interval}, got {float(value)}"


def test_interval_wording_and_named_fractions():
    assert refused(checks.in_interval, 2, 0, 1, True, False, match=None) == \
        "group.key must be in [0, 1), got 2.0"
    with pytest.raises(UserError, match=r"^k must be a number in \[0, 1\), got 1.0$"):
        checks.in_interval("k", 1, 0, 1, high_closed=False, wording="a number in [0, 1)")
    assert checks.fraction("k", 1) == 1.0 and checks.open_fraction("k", "1/3") == pytest.approx(1 / 3)
    assert refused(checks.fraction, 1.5) == "group.key must be in [0, 1], got 1.5"
    assert refused(checks.open_fraction, 1) == "group.key must be between 0 and 1 (exclusive), got 1.0"


@pytest.mark.parametrize(("check", "good", "bad", "expected"), [
    (checks.positive_int, [1, 7, 3.0], [0, -1, 2.5, "3", True, False, None], "a positive integer"),
    (checks.non_negative_int, [0, 7, 3.0], [-1, 2.5, "0", True, None], "a non-negative integer"),
])
def test_integers(check, good, bad, expected):
    for value in good:
        result = check("k", value)
        assert result == int(value) and type(result) is int
    for value in bad:
        assert refused(check, value) == f"group.key must be {expected}, got {value!r}"


def test_flag():
    assert checks.flag("k", True) is True and checks.flag("k", "False") is False
    assert checks.flag("k", "true") is True
    for value in ("maybe", 1, 0, None, "yes"):
        assert refused(checks.flag, value) == f"group.key must be true or false, got {value!r}"


def test_choice_is_case_insensitive_and_lists_the_choices():
    assert checks.choice("k", "Global", ("global", "per_layer")) == "global"
    for value in ("layer", True, None, 1):
        assert refused(checks.choice, value, ("global", "per_layer")) == \
            f"group.key must be one of global, per_layer, got {value!r}"


def test_optional_lets_null_through_and_says_so():
    maybe_int = checks.optional(checks.positive_int)
    assert maybe_int("k", None) is None and maybe_int("k", 4) == 4
    assert refused(maybe_int, 0) == "group.key must be a positive integer or null, got 0"
    assert refused(checks.optional(checks.positive_number), -1) == "group.key must be > 0 or null, got -1.0"
    assert checks.optional(checks.in_interval)("k", 0.5, 0, 1) == 0.5


def test_plain_turns_omegaconf_containers_into_python():
    node = OmegaConf.create({"a": [1, {"b": 2}], "c": "${a}"})
    result = checks.plain(node)
    assert result == {"a": [1, {"b": 2}], "c": [1, {"b": 2}]} and type(result) is dict
    assert type(checks.plain(node.a)) is list
    assert checks.plain(3) == 3 and checks.plain("x") == "x"


def test_checkpoint_paths():
    assert checks.checkpoint_paths("k", "a.ckpt") == [Path("a.ckpt")]
    assert checks.checkpoint_paths("k", OmegaConf.create(["a", "b"])) == [Path("a"), Path("b")]
    assert checks.checkpoint_paths("k", (Path("a"),)) == [Path("a")]
    for value in ([], "", ["a", ""], 3, None, ["a", 1]):
        assert refused(checks.checkpoint_paths, value) == \
            f"group.key must be a checkpoint path or a list of paths, got {value!r}"


NON_FINITE_THROUGH_THE_CLI = [
    (["eval", "eps=nan"], "eps must be a finite number, got nan"),
    (["eval", "eps=[0.1,-inf]"], "eps must be a finite number, got -inf"),
    (["train", "dataset.val_fraction=nan"], "dataset.val_fraction must be a finite number, got nan"),
    (["train", "model.width=inf"], "model.width must be a finite number, got inf"),
    (["train", "optim.lr=nan"], "optim.lr must be a finite number, got nan"),
]


@pytest.mark.slow  # make test-all: many CLI calls (~20 s); the attack-parameter case stays fast
def test_non_finite_numbers_through_the_cli(tmp_path):
    calls = [[*args, f"hydra.run.dir=run_{i}"] for i, (args, _) in enumerate(NON_FINITE_THROUGH_THE_CLI)]
    for (args, message), process in zip(NON_FINITE_THROUGH_THE_CLI, robust_many(calls, tmp_path)):
        lines = process.stderr.strip().splitlines()
        assert process.returncode == 2 and len(lines) == 1, process.stderr
        assert lines[0] == f"robust {args[0]}: error: {message}"


def test_non_finite_attack_parameter_through_the_cli(trained):
    """Attack parameters are checked when the attack is built, after the checkpoint loads."""
    work, metrics, run_dir = trained
    process = robust("eval", f"ckpt_path={run_dir / metrics['checkpoint']}", "dataset.limit_test=50",
                     "attack=pgd_linf", "attack.step_size=nan", "hydra.run.dir=bad_step", cwd=work)
    lines = process.stderr.strip().splitlines()
    assert process.returncode == 2 and len(lines) == 1, process.stderr
    assert "step_size must be a finite number, got nan" in lines[0]
