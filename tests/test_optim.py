"""The optim group: every optimizer x schedule builds the right torch objects, bad values and
renamed keys are one-line errors, and a real fit follows the configured schedule."""

import math

import pytest
import torch
from helpers import FASHION, compose, robust, train_in_process
from omegaconf import OmegaConf

from robustbench_cli.errors import UserError
from robustbench_cli.lit.optim import OPTIMIZERS, SCHEDULES, check_optim, configure

TORCH_OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop}
S = torch.optim.lr_scheduler
TORCH_SCHEDULES = {"none": None, "cosine": S.CosineAnnealingLR, "step": S.StepLR,
                   "exponential": S.ExponentialLR, "plateau": S.ReduceLROnPlateau}


def optim_config(*overrides) -> dict:
    return OmegaConf.to_container(compose("train", *overrides).optim, resolve=True)


def build(*overrides, max_epochs=4, monitor="val_loss"):
    return configure(torch.nn.Linear(3, 2).parameters(), optim_config(*overrides), max_epochs, monitor)


def test_the_default_is_adam_at_1e_3_without_a_schedule():
    config = check_optim(optim_config())
    assert (config["name"], config["lr"], config["weight_decay"], config["schedule"]) == \
        ("adam", 0.001, 0.0, "none")


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_every_optimizer_and_schedule_builds_its_torch_objects(name, schedule):
    built = build(f"optim={name}", f"optim.schedule={schedule}", "optim.lr=0.01",
                  "optim.weight_decay=1e-4")
    optimizer = built["optimizer"]
    assert type(optimizer) is TORCH_OPTIMIZERS[name]
    group = optimizer.param_groups[0]
    assert (group["lr"], group["weight_decay"]) == (0.01, 1e-4)
    if name == "sgd":
        assert (group["momentum"], group["nesterov"]) == (0.9, False)
    if name == "rmsprop":
        assert (group["alpha"], group["eps"], group["momentum"], group["centered"]) == \
            (0.99, 1e-8, 0.0, False)
    if schedule == "none":
        assert "lr_scheduler" not in built
        return
    entry = built["lr_scheduler"]
    assert type(entry["scheduler"]) is TORCH_SCHEDULES[schedule]
    assert entry["interval"] == "epoch" and entry["scheduler"].optimizer is optimizer
    assert entry.get("monitor") == ("val_loss" if schedule == "plateau" else None)


def lrs(built, epochs, losses=None) -> list[float]:
    """The lr of each epoch when the schedule is stepped once per epoch."""
    optimizer, scheduler = built["optimizer"], built["lr_scheduler"]["scheduler"]
    seen = []
    for epoch in range(epochs):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step(*([losses[epoch]] if losses else []))
    return seen


def test_each_schedule_follows_its_keys():
    step = build("optim=rmsprop", "optim.lr=0.045", "optim.schedule=step", "optim.step_size=2",
                 "optim.gamma=0.94")  # Kurakin et al. via Szegedy et al.
    assert lrs(step, 6) == pytest.approx([0.045, 0.045, 0.045 * 0.94, 0.045 * 0.94,
                                          0.045 * 0.94 ** 2, 0.045 * 0.94 ** 2])
    exponential = build("optim.schedule=exponential", "optim.gamma=0.5")
    assert lrs(exponential, 3) == pytest.approx([1e-3, 5e-4, 2.5e-4])
    cosine = build("optim=sgd", "optim.lr=0.1", "optim.schedule=cosine", "optim.min_lr=0.01",
                   max_epochs=4)
    assert lrs(cosine, 5) == pytest.approx(
        [0.01 + 0.09 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(5)])


def test_plateau_drops_on_stalls_and_max_drops_caps_them():
    stalled = [1.0] * 12
    # Liao et al.: one drop from 1e-3 to 1e-4 once the loss has not improved for an epoch
    once = build("optim.schedule=plateau", "optim.factor=0.1", "optim.patience=1", "optim.max_drops=1")
    seen = lrs(once, 12, stalled)
    assert seen[:3] == [1e-3] * 3 and seen[3:] == [seen[-1]] * 9  # no second drop, however long
    assert seen[-1] == pytest.approx(1e-4)
    unlimited = build("optim.schedule=plateau", "optim.factor=0.5", "optim.patience=0")
    assert lrs(unlimited, 4, stalled) == pytest.approx([1e-3, 1e-3, 5e-4, 2.5e-4])
    floor = build("optim.schedule=plateau", "optim.factor=0.5", "optim.patience=0", "optim.min_lr=4e-4")
    assert lrs(floor, 5, stalled) == pytest.approx([1e-3, 1e-3, 5e-4, 4e-4, 4e-4])
    improving = build("optim.schedule=plateau", "optim.patience=0")
    assert set(lrs(improving, 5, [5.0, 4.0, 3.0, 2.0, 1.0])) == {1e-3}


def test_plateau_without_a_monitored_loss_is_a_user_error():
    with pytest.raises(UserError, match="validation"):
        build("optim.schedule=plateau", monitor=None)


BAD = {
    "optim.lr=0": "optim.lr must be > 0",
    "optim.lr=-1": "optim.lr must be > 0",
    "optim.lr=nan": "finite",
    "optim.lr=inf": "finite",
    "optim.lr=fast": "optim.lr must be a number",
    "optim.lr=true": "optim.lr must be a number",
    "optim.weight_decay=-0.1": "optim.weight_decay must be >= 0",
    "optim.schedule=linear": "optim.schedule must be one of",
    "optim.step_size=0": "optim.step_size must be a positive integer",
    "optim.step_size=1.5": "optim.step_size must be a positive integer",
    "optim.gamma=0": "optim.gamma must be in (0, 1]",
    "optim.gamma=1.5": "optim.gamma must be in (0, 1]",
    "optim.factor=1": "optim.factor must be in (0, 1)",
    "optim.patience=-1": "optim.patience must be a non-negative integer",
    "optim.max_drops=-1": "optim.max_drops must be a non-negative integer",
    "optim.min_lr=0.1": "optim.min_lr must be <= optim.lr",
    "optim.min_lr=-inf": "finite",
}
BAD_PER_OPTIMIZER = {
    ("sgd", "optim.momentum=1"): "optim.momentum must be in [0, 1)",
    ("sgd", "optim.nesterov=maybe"): "optim.nesterov must be true or false",
    ("rmsprop", "optim.alpha=1"): "optim.alpha must be in [0, 1)",
    ("rmsprop", "optim.eps=0"): "optim.eps must be > 0",
    ("rmsprop", "optim.centered=2"): "optim.centered must be true or false",
}


@pytest.mark.parametrize(("overrides", "message"), [
    *((["optim=adam", o], m) for o, m in BAD.items()),
    *(([f"optim={n}", o], m) for (n, o), m in BAD_PER_OPTIMIZER.items()),
    (["optim=sgd", "optim.momentum=0", "optim.nesterov=true"],
     "optim.nesterov=true needs optim.momentum > 0"),
    (["+optim.betas=[0.9,0.99]"], "optim.betas is not a key of optim=adam"),
    (["+optim.scheduler=cosine"], "optim.scheduler is gone: use optim.schedule=cosine"),
    (["optim=rmsprop", "optim.name=sgd"], "optim.alpha is a setting of optim=rmsprop, not of optim=sgd"),
    (["optim.name=sgd"], "optim=sgd needs optim.momentum"),
    (["optim.name=adagrad"], "optim must be one of adam, rmsprop, sgd"),
])
def test_bad_values_are_one_line_errors(overrides, message):
    with pytest.raises(UserError) as error:
        check_optim(optim_config(*overrides))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_an_experiment_names_its_optimizer_by_including_its_file():
    """kurakin_cifar10 keeps SGD (0.05, cosine); the documents' recipes are configs."""
    cifar = check_optim(optim_config("experiment=kurakin_cifar10"))
    assert (cifar["name"], cifar["lr"], cifar["momentum"], cifar["schedule"]) == ("sgd", 0.05, 0.9, "cosine")
    kurakin = check_optim(optim_config("experiment=kurakin_imagenet"))
    assert {k: kurakin[k] for k in ("name", "lr", "alpha", "eps", "schedule", "step_size", "gamma")} == \
        {"name": "rmsprop", "lr": 0.045, "alpha": 0.9, "eps": 1.0, "schedule": "step", "step_size": 2,
         "gamma": 0.94}
    liao = check_optim(optim_config("experiment=liao_hgd"))
    assert {k: liao[k] for k in ("name", "lr", "schedule", "factor", "patience", "max_drops")} == \
        {"name": "adam", "lr": 0.001, "schedule": "plateau", "factor": 0.1, "patience": 1, "max_drops": 1}


def test_old_spellings_name_the_new_ones_through_the_cli(tmp_path):
    cases = {
        "optim.name=sgd": "optim.name is gone: use optim=sgd",
        "optim.scheduler=cosine": "optim.scheduler is gone: use optim.schedule=cosine",
        "+optim.scheduler=cosine": "optim.scheduler is gone: use optim.schedule=cosine",
        "defense.lr_final=1e-4": "defense.lr_final is gone: use optim.schedule=plateau optim.min_lr=1e-4",
        "defense.lr_patience=2": "defense.lr_patience is gone: use optim.schedule=plateau optim.patience=2",
    }
    for override, message in cases.items():
        process = robust("train", "defense=hgd", override, cwd=tmp_path)
        lines = process.stderr.strip().splitlines()
        assert process.returncode == 2 and len(lines) == 1, (override, process.stderr)
        assert message in lines[0], (override, lines[0])
    assert not (tmp_path / "outputs").exists()


def test_an_optimizer_typed_beside_an_experiment_that_sets_another_is_refused(tmp_path):
    process = robust("train", "experiment=kurakin_cifar10", "optim=rmsprop", cwd=tmp_path)
    lines = process.stderr.strip().splitlines()
    assert process.returncode == 2 and len(lines) == 1, process.stderr
    assert "optim=rmsprop is overridden by the experiment" in lines[0]


def test_plateau_without_validation_is_refused_before_training():
    from robustbench_cli.config import check_train_config

    cfg = compose("train", "dataset=fashion_mnist", f"dataset.root={FASHION}",
                  "optim.schedule=plateau", "dataset.val_fraction=0")
    with pytest.raises(UserError, match="dataset.val_fraction > 0"):
        check_train_config(cfg)


def test_a_fit_follows_the_configured_rmsprop_step_schedule(tmp_path):
    """2 epochs of RMSProp with lr x 0.5 every epoch: the saved optimizer state has lr 1e-3 / 4."""
    run = tmp_path / "run"
    metrics = train_in_process(run, "optim=rmsprop", "optim.schedule=step", "optim.step_size=1",
                               "optim.gamma=0.5", "dataset.limit_train=500", "dataset.limit_test=100",
                               "trainer.max_epochs=2", f"paths.output_dir={tmp_path}")
    assert metrics["epochs"] == 2
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    [group] = state["optimizer_states"][0]["param_groups"]
    assert (group["alpha"], group["centered"]) == (0.99, False)  # RMSprop's own settings
    [scheduler] = state["lr_schedulers"]
    assert (scheduler["step_size"], scheduler["gamma"], scheduler["last_epoch"]) == (1, 0.5, 2)
    assert group["lr"] == pytest.approx(0.001 * 0.5 ** 2)
    assert metrics["config"]["optim"]["name"] == "rmsprop"
