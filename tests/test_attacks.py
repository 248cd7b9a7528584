"""Attacks on real data: bounds, closed forms, strength, protocol, agreement with torchattacks."""

import gzip
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchattacks
from omegaconf import OmegaConf
from torch import nn
from torchvision.io import ImageReadMode, decode_image

from robustbench_cli.attacks import ATTACK_NAMES, Attack, build
from robustbench_cli.errors import UserError

ATTACK_CONFIGS = Path(__file__).resolve().parents[1] / "conf" / "attack"
EPS_FOR_NORM = {"linf": 0.1, "l2": 1.0, "l0": 0.5, None: 0.1}
# transfer crafts on checkpoints (tests/test_attacks_blackbox.py covers it with real ones);
# saved reads images from a file (tests/test_adversarial_sets.py).
MODEL_ONLY_ATTACKS = tuple(name for name in ATTACK_NAMES if name not in ("transfer", "saved"))
# Smaller budgets where the defaults would make the bounds tests slow.
QUICK_PARAMS = {"jsma": {"max_pixels": 0.03}, "nes": {"samples": 5, "max_queries": 110},
                "square": {"queries": 300}, "apgd": {"steps": 20}, "fab": {"steps": 20},
                "autoattack": {"steps": 20, "queries": 300}}


def read_idx_head(path: Path, count: int) -> np.ndarray:
    """The first `count` records of a gzipped IDX file, without reading the rest."""
    with gzip.open(path, "rb") as stream:
        ndim = stream.read(4)[3]
        shape = [int.from_bytes(stream.read(4), "big") for _ in range(ndim)]
        record = math.prod(shape[1:])
        data = np.frombuffer(stream.read(count * record), dtype=np.uint8)
    return data.reshape(count, *shape[1:])


def fashion_split(root: Path, split: str, count: int):
    images = read_idx_head(root / f"{split}-images-idx3-ubyte.gz", count)
    labels = read_idx_head(root / f"{split}-labels-idx1-ubyte.gz", count)
    x = torch.from_numpy(images.copy()).float().div(255).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


@pytest.fixture(scope="module")
def fashion_test(fashion_root):
    return fashion_split(fashion_root, "t10k", 1000)


@pytest.fixture(scope="module")
def trained_mlp(fashion_root):
    """A small MLP trained for two epochs on 2,000 Fashion-MNIST images (about 80% accuracy)."""
    x, y = fashion_split(fashion_root, "train", 2000)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(2):
        for batch in torch.randperm(len(x)).split(50):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return model.eval()


def cifar_test_images(root: Path, count: int):
    """`count` CIFAR-10 test images, cycling through the classes, and their labels."""
    classes = sorted(p for p in (root / "test").iterdir() if p.is_dir())
    files = [sorted(classes[i % 10].glob("*.jpg"))[i // 10] for i in range(count)]
    x = torch.stack([decode_image(str(f), mode=ImageReadMode.RGB) for f in files]).float() / 255
    return x, torch.arange(count) % 10


@pytest.fixture(scope="module")
def cifar_images(cifar_root):
    return cifar_test_images(cifar_root, 64)


def small_cnn(classes: int = 10) -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(128, classes),
    )


def linear_head(classes: int) -> nn.Module:
    torch.manual_seed(2)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, classes))


@pytest.fixture(params=["fashion_mlp", "cifar_cnn", "cifar_100_classes"])
def model_and_batch(request, trained_mlp, fashion_test, cifar_images):
    """A model and a batch it classifies; untrained models are scored against their own
    predictions so that every point starts correct and the attacks have work to do."""
    if request.param == "fashion_mlp":
        x, y = fashion_test
        return trained_mlp, x[:64], y[:64]
    model = small_cnn().eval() if request.param == "cifar_cnn" else linear_head(100).eval()
    x = cifar_images[0]
    with torch.no_grad():
        return model, x, model(x).argmax(1)


def perturbation_norms(x_adv, x, norm):
    return (x_adv - x).flatten(1).norm(p=float("inf") if norm == "linf" else 2, dim=1)


def assert_inside_the_threat_model(attack, x_adv, x):
    """[0, 1], and the attack's ball: L-inf or L2 radius eps; for L0, at most max_pixels of
    the features raised, each by at most eps; no ball for noise without a norm."""
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert not x_adv.requires_grad and x_adv.grad_fn is None
    change = (x_adv - x).flatten(1)
    if attack.norm == "l0":
        assert change.min() >= 0 and change.max() <= attack.eps + 1e-6
        budget = math.ceil(attack.max_pixels * change.shape[1])
        assert (change != 0).sum(1).max() <= budget
    elif attack.norm is not None:
        assert perturbation_norms(x_adv, x, attack.norm).max() <= attack.eps + 1e-5


@pytest.mark.parametrize("name", MODEL_ONLY_ATTACKS)
def test_attack_output_is_in_range_and_inside_the_ball(name, model_and_batch):
    model, x, y = model_and_batch
    norm = build(name, model, eps=0.1).norm
    attack = build(name, model, eps=EPS_FOR_NORM[norm], **QUICK_PARAMS.get(name, {}))
    x_before = x.clone()

    x_adv = attack(x, y)

    assert isinstance(attack, Attack) and attack.name == name
    assert torch.equal(x, x_before)
    assert_inside_the_threat_model(attack, x_adv, x)
    if name == "none":
        assert torch.equal(x_adv, x)
    else:
        assert (x_adv != x).any()


@pytest.mark.parametrize("name", MODEL_ONLY_ATTACKS)
def test_eps_zero_returns_the_input(name, trained_mlp, fashion_test):
    x, y = fashion_test[0][:32], fashion_test[1][:32]
    attack = build(name, trained_mlp, eps=0)
    assert torch.equal(attack(x, y), x)
    assert attack.stats["gradient_passes"] == 0
    assert all(count == 0 for count in attack.stats.values())


def binary_direction(model, x, labels):
    """For a two-class linear model the CE gradient is p_other * (W[other] - W[label])."""
    weight = model[1].weight.detach()
    return (weight[1 - labels] - weight[labels]).view_as(x)


@pytest.mark.parametrize(
    ("name", "step"),
    [
        ("fgsm", lambda d: d.sign()),
        ("fgsm_pred", lambda d: d.sign()),
        ("fast_grad_l2", lambda d: d / d.flatten(1).norm(dim=1).view(-1, 1, 1, 1)),
        ("fast_grad_linf", lambda d: d / d.flatten(1).abs().amax(1).view(-1, 1, 1, 1)),
    ],
)
def test_one_step_attacks_match_the_closed_form_on_a_linear_model(name, step, fashion_test):
    x, y = fashion_test[0][:100], fashion_test[1][:100] % 2
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 2)).eval()
    with torch.no_grad():
        labels = model(x).argmax(1) if name == "fgsm_pred" else y
    assert name != "fgsm_pred" or (labels != y).any()  # otherwise pred and true agree
    eps = 0.05

    expected = (x + eps * step(binary_direction(model, x, labels))).clamp(0, 1)

    torch.testing.assert_close(build(name, model, eps=eps)(x, y), expected, rtol=0, atol=1e-6)


def test_step_ll_raises_the_least_likely_class(trained_mlp, fashion_test):
    x, y = fashion_test[0][:500], fashion_test[1][:500]
    with torch.no_grad():
        before = trained_mlp(x).log_softmax(1)
        least_likely = before.argmin(1, keepdim=True)
        after = trained_mlp(build("step_ll", trained_mlp, eps=0.05)(x, y)).log_softmax(1)
    raised = after.gather(1, least_likely) > before.gather(1, least_likely)
    assert raised.float().mean() > 0.95


def test_pgd_is_at_least_as_strong_as_fgsm(trained_mlp, fashion_test):
    x, y = fashion_test
    fgsm = accuracy(trained_mlp, build("fgsm", trained_mlp, eps=0.05)(x, y), y)
    pgd = accuracy(trained_mlp, build("pgd_linf", trained_mlp, eps=0.05)(x, y), y)
    assert pgd <= fgsm < accuracy(trained_mlp, x, y)


@pytest.mark.parametrize("name", ["pgd_linf", "pgd_l2", "bim", "iter_ll"])
def test_early_stop_is_no_weaker_and_cheaper(name, trained_mlp, fashion_test):
    x, y = fashion_test[0][:500], fashion_test[1][:500]
    eps = EPS_FOR_NORM[build(name, trained_mlp, eps=0.1).norm] / 2
    full = build(name, trained_mlp, eps=eps, steps=10, early_stop=False)
    early = build(name, trained_mlp, eps=eps, steps=10, early_stop=True)

    full_accuracy = accuracy(trained_mlp, full(x, y), y)
    early_accuracy = accuracy(trained_mlp, early(x, y), y)

    assert early_accuracy <= full_accuracy
    assert full.stats["gradient_passes"] == 10 * len(x)
    assert early.stats["gradient_passes"] < full.stats["gradient_passes"]


def test_restarts_keep_the_worst_case(trained_mlp, fashion_test):
    x, y = fashion_test[0][:500], fashion_test[1][:500]
    one = build("pgd_linf", trained_mlp, eps=0.05, steps=5)
    three = build("pgd_linf", trained_mlp, eps=0.05, steps=5, restarts=3)
    assert accuracy(trained_mlp, three(x, y), y) <= accuracy(trained_mlp, one(x, y), y)
    # Restarts two and three run only on the survivors of restart one.
    assert three.stats["gradient_passes"] < 3 * one.stats["gradient_passes"]


@pytest.mark.parametrize("name", ["pgd_linf", "pgd_l2", "step_rnd"])
def test_randomness_follows_the_seed(name, trained_mlp, fashion_test):
    x, y = fashion_test[0][:64], fashion_test[1][:64]
    first = build(name, trained_mlp, eps=0.5, seed=0)(x, y)
    assert torch.equal(build(name, trained_mlp, eps=0.5, seed=0)(x, y), first)
    assert not torch.equal(build(name, trained_mlp, eps=0.5, seed=1)(x, y), first)


@pytest.mark.parametrize(("eps", "steps"), [(8 / 255, 10), (4 / 255, 5), (16 / 255, 20)])
@pytest.mark.parametrize("name", ["bim", "iter_ll"])
def test_kurakin_schedule_sets_the_number_of_steps(name, eps, steps, trained_mlp, fashion_test):
    x, y = fashion_test[0][:16], fashion_test[1][:16]
    attack = build(name, trained_mlp, eps=eps, early_stop=False)
    attack(x, y)
    assert attack.stats["gradient_passes"] == steps * len(x)
    overridden = build(name, trained_mlp, eps=eps, steps=3, early_stop=False)
    overridden(x, y)
    assert overridden.stats["gradient_passes"] == 3 * len(x)


@pytest.mark.parametrize("name", ["fgsm", "step_rnd", "pgd_linf", "bim", "jsma", "nes",
                                  "random_sign"])
def test_attack_leaves_mode_batchnorm_and_gradients_alone(name, cifar_images):
    model = small_cnn().train()
    model[-1].eval()  # a mixed-mode model must come back mixed
    batchnorm = model[1]
    statistics = {k: v.clone() for k, v in batchnorm.state_dict().items()}

    build(name, model, eps=0.03, **QUICK_PARAMS.get(name, {}))(*cifar_images)

    assert model.training and batchnorm.training and not model[-1].training
    for key, value in batchnorm.state_dict().items():
        assert torch.equal(value, statistics[key]), key
    assert all(p.grad is None and p.requires_grad for p in model.parameters())


class FailingModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(3 * 32 * 32, 10)

    def forward(self, x):
        raise RuntimeError("boom")


def test_mode_and_parameters_are_restored_when_the_model_fails(cifar_images):
    model = FailingModel().train()
    with pytest.raises(RuntimeError, match="boom"):
        build("pgd_linf", model, eps=0.03)(*cifar_images)
    assert model.training
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("name", ["pgd_linf", "nes"])
def test_attack_works_when_called_under_inference_mode(name, trained_mlp, fashion_test):
    # Lightning runs test and predict steps under torch.inference_mode().
    with torch.inference_mode():
        x, y = fashion_test[0][:32].clone(), fashion_test[1][:32].clone()
        x_adv = build(name, trained_mlp, eps=0.1)(x, y)
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6
    assert accuracy(trained_mlp, x_adv, y) < accuracy(trained_mlp, x, y)


@pytest.mark.parametrize(
    ("name", "params", "reference"),
    [
        ("fgsm", {"eps": 0.1}, lambda m: torchattacks.FGSM(m, eps=0.1)),
        ("pgd_linf", {"eps": 0.1, "steps": 10, "step_size": 0.025},
         lambda m: torchattacks.PGD(m, eps=0.1, alpha=0.025, steps=10, random_start=True)),
        ("pgd_l2", {"eps": 1.0, "steps": 10, "step_size": 0.25},
         lambda m: torchattacks.PGDL2(m, eps=1.0, alpha=0.25, steps=10, random_start=True)),
    ],
)
def test_robust_accuracy_agrees_with_torchattacks(name, params, reference, trained_mlp,
                                                  fashion_test):
    x, y = fashion_test
    torch.manual_seed(0)
    theirs = accuracy(trained_mlp, reference(trained_mlp)(x, y), y)
    ours = accuracy(trained_mlp, build(name, trained_mlp, **params)(x, y), y)
    assert abs(ours - theirs) <= 0.02, (ours, theirs)
    assert ours < accuracy(trained_mlp, x, y) - 0.1  # the attack does real damage


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("nope", {"eps": 0.1}, "unknown attack 'nope'; choose from: apgd, autoattack, bim, "),
        ("pgd_linf", {"eps": 0.1, "stepz": 3},
         "unknown parameter 'stepz'; valid: eps, label, steps"),
        ("fgsm", {"eps": 0.1, "steps": 3}, "unknown parameter 'steps'"),
        ("fgsm", {}, "missing parameter 'eps'"),
        ("fgsm", {"eps": -0.1}, "eps must be >= 0"),
        ("pgd_linf", {"eps": 1.5}, "eps must be <= 1"),
        ("fgsm", {"eps": "lots"}, "eps must be a number"),
        ("pgd_linf", {"eps": 0.1, "steps": 0}, "steps must be a positive integer"),
        ("bim", {"eps": 0.1, "steps": 2.5}, "steps must be a positive integer"),
        ("pgd_l2", {"eps": 0.1, "restarts": 0}, "restarts must be a positive integer"),
        ("pgd_linf", {"eps": 0.1, "step_size": -0.01}, "step_size must be > 0"),
        ("pgd_linf", {"eps": 0.1, "step_ratio": 0}, "step_ratio must be > 0"),
        ("fgsm", {"eps": 0.1, "label": "target"}, "label must be one of true, pred"),
        ("fgsm", {"eps": 0.1, "label": False}, "label must be one of true, pred"),
        ("pgd_linf", {"eps": 0.1, "early_stop": "maybe"}, "early_stop must be true or false"),
        ("pgd_linf", {"eps": 0.1, "random_start": False, "restarts": 2}, "needs random_start"),
        ("step_rnd", {"eps": 0.1, "seed": -1}, "seed must be a non-negative integer"),
        ("jsma", {"eps": 1.5}, "eps must be <= 1 for an L0 attack"),
        ("jsma", {"eps": 1, "max_pixels": 1.5}, "max_pixels is a fraction"),
        ("jsma", {"eps": 1, "max_pixels": 0}, "max_pixels must be > 0"),
        ("jsma", {"eps": 1, "target": "best"}, "target must be one of random, ll, none or a class"),
        ("jsma", {"eps": 1, "target": -1}, "target must be one of"),
        ("jsma", {"eps": 1, "saliency": "probs"}, "saliency must be one of softmax, logits"),
        ("jsma", {"eps": 1, "candidates": 0}, "candidates must be a positive integer"),
        ("nes", {"eps": 1.5}, "eps must be <= 1 for an L-inf attack"),
        ("nes", {"eps": 0.1, "samples": 0}, "samples must be a positive integer"),
        ("nes", {"eps": 0.1, "sigma": 0}, "sigma must be > 0"),
        ("nes", {"eps": 0.1, "momentum": 1}, "momentum must be in [0, 1)"),
        ("nes", {"eps": 0.1, "samples": 10, "max_queries": 20}, "2 * samples + 1 = 21 queries"),
        ("nes", {"eps": 0.1, "steps": 0}, "steps must be a positive integer"),
        ("gaussian", {"eps": 0.1, "sigma": -1}, "sigma must be > 0"),
        ("random_sign", {"eps": 2}, "eps must be <= 1"),
        ("trunc_normal", {"eps": 0.1, "seed": "x"}, "seed must be a non-negative integer"),
        ("transfer", {"eps": 0.1}, "source_ckpt is required"),
        ("transfer", {"eps": 0.1, "source_ckpt": []}, "source_ckpt must be a checkpoint path"),
        ("transfer", {"eps": 0.1, "source_ckpt": "a.ckpt", "source_attack": "transfer"},
         "source_attack cannot be transfer"),
        ("transfer", {"eps": 0.1, "source_ckpt": "a.ckpt", "source_attack": "cw"},
         "unknown attack 'cw'"),
        ("transfer", {"eps": 0.1, "source_ckpt": "a.ckpt", "source_params": [1]},
         "source_params must be a mapping"),
        ("transfer", {"eps": 0.1, "source_ckpt": "a.ckpt", "source_params": {"eps": 1}},
         "source_params cannot set eps"),
        ("transfer", {"eps": 0.1, "source_ckpt": "missing.ckpt"}, "checkpoint not found: missing.ckpt"),
        ("apgd", {"eps": 0.1, "loss": "foo"}, "loss must be one of ce, dlr, got 'foo'"),
        ("apgd", {"eps": 0.1, "norm": "l3"}, "norm must be one of linf, l2, got 'l3'"),
        ("apgd", {"norm": "linf", "eps": 2}, "eps must be <= 1 for an L-inf attack"),
        ("apgd", {"eps": 0.1, "target_classes": -1}, "target_classes must be a non-negative integer, got -1"),
        ("apgd", {"eps": 0.1, "target_classes": 3},
         "target_classes > 0 runs APGD-T, whose loss is the targeted DLR"),
        ("apgd", {"eps": 0.1, "steps": 0}, "steps must be a positive integer"),
        ("apgd", {"eps": 0.1, "restarts": 0}, "restarts must be a positive integer"),
        ("apgd", {"eps": 0.1, "rho": 1.5}, "rho must be in [0, 1], got 1.5"),
        ("apgd", {"eps": 0.1, "alpha": 0}, "alpha must be in (0, 1], got 0"),
        ("apgd", {"eps": 0.1, "early_stop": "maybe"}, "early_stop must be true or false"),
        ("apgd", {"eps": 0.1, "seed": -1}, "seed must be a non-negative integer"),
        ("fab", {"eps": 0.1, "norm": "l1"}, "norm must be one of linf, l2"),
        ("fab", {"eps": 1.5}, "eps must be <= 1 for an L-inf attack"),
        ("fab", {"eps": 0.1, "target_classes": -1}, "target_classes must be a non-negative integer"),
        ("fab", {"eps": 0.1, "target_classes": 2.5}, "target_classes must be a non-negative integer"),
        ("fab", {"eps": 0.1, "steps": 0}, "steps must be a positive integer"),
        ("fab", {"eps": 0.1, "restarts": 0}, "restarts must be a positive integer"),
        ("fab", {"eps": 0.1, "alpha_max": 1.5}, "alpha_max must be in [0, 1]"),
        ("fab", {"eps": 0.1, "eta": 0.9}, "eta must be >= 1"),
        ("fab", {"eps": 0.1, "eta": "x"}, "eta must be a number"),
        ("fab", {"eps": 0.1, "beta": 1}, "beta must be between 0 and 1"),
        ("fab", {"eps": 0.1, "beta": 0}, "beta must be between 0 and 1"),
        ("fab", {"eps": 0.1, "seed": -1}, "seed must be a non-negative integer"),
        ("fab", {"eps": 0.1, "early_stop": "maybe"}, "early_stop must be true or false"),
        ("fab", {"eps": 0.1, "target": 3}, "unknown parameter 'target'"),
        ("square", {"eps": 1.5}, "eps must be <= 1 for an L-inf attack"),
        ("square", {"eps": 0.1, "norm": "l1"}, "norm must be one of linf, l2"),
        ("square", {"eps": 0.1, "queries": 0}, "queries must be a positive integer"),
        ("square", {"eps": 0.1, "p_init": 0}, "p_init must be in (0, 1]"),
        ("square", {"eps": 0.1, "p_init": 1.5}, "p_init must be in (0, 1]"),
        ("square", {"eps": 0.1, "loss": "xent"}, "loss must be one of margin, ce"),
        ("square", {"eps": 0.1, "seed": -1}, "seed must be a non-negative integer"),
        ("square", {"eps": 0.1, "early_stop": "maybe"}, "early_stop must be true or false"),
        ("square", {"eps": 0.1, "steps": 10}, "unknown parameter 'steps'"),
    ],
)
def test_bad_parameters_raise_user_error(name, params, message, trained_mlp):
    with pytest.raises(UserError, match="^" if name == "nope" else f"^attack {name}: ") as error:
        build(name, trained_mlp, **params)
    assert message in str(error.value)


def test_config_style_values_are_accepted(trained_mlp):
    attack = build("pgd_linf", trained_mlp, name="pgd_linf", eps="8/255", step_size="2/255",
                   label=True)
    assert attack.eps == pytest.approx(8 / 255) and attack.step_size == pytest.approx(2 / 255)
    assert attack.label == "true"
    assert build("fgsm", trained_mlp, eps=0.1, label="pred").label == "pred"
    assert build("pgd_l2", trained_mlp, eps=3.0).eps == 3.0  # L2 eps may exceed 1
    assert build("pgd_linf", trained_mlp, eps=0.04).step_size == pytest.approx(0.01)


def test_every_attack_config_builds(trained_mlp):
    configs = {path.stem: OmegaConf.to_container(OmegaConf.load(path))
               for path in ATTACK_CONFIGS.glob("*.yaml")}
    assert set(configs) == set(ATTACK_NAMES)
    for stem, config in configs.items():
        assert config["name"] == stem and "eps" not in config
        if stem in ("transfer", "saved"):  # the config cannot know the user's file
            with pytest.raises(UserError, match="source_ckpt is required|path is required"):
                build(stem, trained_mlp, eps=0.03, **config)
            continue
        assert build(stem, trained_mlp, eps=0.03, **config).name == stem


def test_importing_the_package_does_not_load_torch():
    code = "import sys, robustbench_cli.attacks; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_rfgsm_is_a_seeded_random_step_then_fgsm(trained_mlp, fashion_test):
    x, y = fashion_test[0][:200], fashion_test[1][:200]
    # Without its random step R+FGSM is FGSM; the step is seeded per point.
    torch.testing.assert_close(build("rfgsm", trained_mlp, eps=0.1, alpha=0)(x, y),
                               build("fgsm", trained_mlp, eps=0.1)(x, y), rtol=0, atol=0)
    x_adv = build("rfgsm", trained_mlp, eps=0.1)(x, y)
    assert torch.equal(x_adv, build("rfgsm", trained_mlp, eps=0.1)(x, y))
    assert not torch.equal(x_adv, build("rfgsm", trained_mlp, eps=0.1, seed=1)(x, y))
    assert perturbation_norms(x_adv, x, "linf").max() <= 0.1 + 1e-6
    assert accuracy(trained_mlp, x_adv, y) < accuracy(trained_mlp, x, y) - 0.1
    with pytest.raises(UserError, match="alpha must be in"):
        build("rfgsm", trained_mlp, eps=0.1, alpha=0.2)
