"""JSMA, NES, the noise baselines and transfer, on real data and real `robust train` checkpoints."""

import json
import math
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from helpers import FASHION, ok, robust
from test_attacks import (
    accuracy,
    assert_inside_the_threat_model,
    cifar_test_images,
    fashion_split,
    linear_head,
    small_cnn,
)
from torch import nn

from robustbench_cli import load_classifier
from robustbench_cli.attacks import build
from robustbench_cli.errors import UserError

# Trained side by side in `sources`: a Fashion-MNIST CNN and a CIFAR-10 MLP.
SOURCE_RUNS = {
    "fashion_cnn": ["model=cnn", "dataset=fashion_mnist", f"dataset.root={FASHION}",
                    "dataset.limit_train=2000", "dataset.limit_test=100", "trainer.max_epochs=1",
                    "seed=2"],
    "cifar_mlp": ["model=mlp", "dataset=cifar10", "dataset.root={cifar}", "dataset.limit_train=300",
                  "dataset.limit_test=100", "trainer.max_epochs=1", "seed=2"],
}


def train_checkpoint(work, args) -> str:
    work.mkdir()
    ok(robust("train", *args, cwd=work))
    [metrics_file] = (work / "outputs" / "train").glob("*/metrics.json")
    return str(metrics_file.parent / json.loads(metrics_file.read_text())["checkpoint"])


@pytest.fixture(scope="module")
def sources(tmp_path_factory, cifar_root) -> dict:
    """{run name: checkpoint path} for SOURCE_RUNS."""
    work = tmp_path_factory.mktemp("sources")
    runs = {name: [arg.format(cifar=cifar_root) for arg in args]
            for name, args in SOURCE_RUNS.items()}
    with ThreadPoolExecutor(len(runs)) as pool:
        paths = pool.map(lambda name: train_checkpoint(work / name, runs[name]), runs)
        return dict(zip(runs, paths))


@pytest.fixture(scope="module")
def target_ckpt(trained) -> str:
    """The session's Fashion-MNIST MLP (conftest), the model under attack."""
    _, metrics, run_dir = trained
    return str(run_dir / metrics["checkpoint"])


@pytest.fixture(scope="module")
def target(target_ckpt):
    return load_classifier(target_ckpt)


@pytest.fixture(scope="module")
def fashion_200(fashion_root):
    return fashion_split(fashion_root, "t10k", 200)


@pytest.fixture(scope="module")
def correct_200(target, fashion_200):
    """The points among the 200 that the target classifies correctly (what the runner attacks)."""
    x, y = fashion_200
    with torch.no_grad():
        keep = target(x).argmax(1) == y
    return x[keep], y[keep]


@pytest.fixture(scope="module")
def cifar_16(cifar_root):
    return cifar_test_images(cifar_root, 16)[0]


class OutputOnly(nn.Module):
    """A model seen as a black box: any forward with autograd on fails; images are counted."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.images = 0

    def forward(self, x):
        if torch.is_grad_enabled() or x.requires_grad:
            raise AssertionError("the model ran with autograd on")
        self.images += len(x)
        return self.model(x)


def test_nes_lowers_accuracy_from_queries_alone(target, fashion_200):
    x, y = fashion_200
    guarded = OutputOnly(target)
    with pytest.raises(AssertionError, match="autograd on"):  # the guard catches gradient attacks
        build("fgsm", guarded, eps=0.1)(x, y)
    guarded.images = 0
    attack = build("nes", guarded, eps=0.1, max_queries=2000)

    x_adv = attack(x, y)

    assert accuracy(target, x_adv, y) < accuracy(target, x, y) - 0.15
    assert_inside_the_threat_model(attack, x_adv, x)
    assert 0 < attack.stats["queries"] == guarded.images <= 2000 * len(x)
    assert attack.stats["gradient_passes"] == 0
    assert all(p.grad is None for p in target.parameters())


def test_nes_spends_at_most_its_query_budget(target, correct_200):
    x, y = correct_200
    one_iteration = build("nes", target, eps=0.1, samples=10, max_queries=21)
    one_iteration(x, y)
    # One check and one estimate of 2 * 10 queries for every (still correct) point.
    assert one_iteration.stats["queries"] == 21 * len(x)
    capped = build("nes", target, eps=0.1, samples=10, max_queries=1000, steps=3)
    capped(x, y)
    assert capped.stats["queries"] <= 3 * 21 * len(x)


def test_nes_follows_the_seed(target, correct_200):
    x, y = correct_200[0][:32], correct_200[1][:32]
    params = {"eps": 0.1, "samples": 5, "max_queries": 55}
    first = build("nes", target, seed=0, **params)(x, y)
    assert torch.equal(build("nes", target, seed=0, **params)(x, y), first)
    assert not torch.equal(build("nes", target, seed=1, **params)(x, y), first)


def test_jsma_targeted_reaches_its_target_within_the_budget(target, correct_200):
    x, y = correct_200
    attack = build("jsma", target, eps=1, max_pixels=0.1, target="random")

    x_adv = attack(x, y)
    targets = attack._targets(x, y)  # the targets drawn for the points (indices) of that call

    with torch.no_grad():
        reached = (target(x_adv).argmax(1) == targets).float().mean()
    assert reached > 0.5
    assert (targets != y).all()
    assert_inside_the_threat_model(attack, x_adv, x)
    assert ((x_adv != x).flatten(1).sum(1) <= math.ceil(0.1 * 784)).all()
    assert attack.stats["gradient_passes"] > 0


@pytest.mark.parametrize("saliency", ["softmax", "logits"])
def test_jsma_untargeted_lowers_accuracy(saliency, target, correct_200):
    x, y = correct_200
    attack = build("jsma", target, eps=1, target="none", saliency=saliency)
    x_adv = attack(x, y)
    assert accuracy(target, x_adv, y) < 0.2  # every point started correct
    assert_inside_the_threat_model(attack, x_adv, x)


def test_jsma_pair_search_over_candidates_matches_the_exhaustive_one(target, correct_200):
    x, y = correct_200[0][:16], correct_200[1][:16]
    params = {"eps": 1, "target": "random", "saliency": "logits"}
    exhaustive = build("jsma", target, candidates=None, **params)(x, y)
    assert torch.equal(build("jsma", target, candidates=64, **params)(x, y), exhaustive)


def test_jsma_class_index_target(target, correct_200):
    x, y = correct_200
    x_adv = build("jsma", target, eps=1, target=3)(x, y)
    of_class = y == 3
    assert of_class.any() and torch.equal(x_adv[of_class], x[of_class])
    with torch.no_grad():
        assert (target(x_adv[~of_class]).argmax(1) == 3).float().mean() > 0.4
    with pytest.raises(UserError, match="target 10 is not a class of a 10-class model"):
        build("jsma", target, eps=1, target=10)(x, y)


def interior(x, margin):
    """Pixels at least `margin` from 0 and 1, where added noise is never clamped."""
    return (x >= margin) & (x <= 1 - margin)


def test_random_sign_moves_every_free_pixel_by_exactly_eps(cifar_16):
    x, eps = cifar_16, 0.05
    attack = build("random_sign", small_cnn(), eps=eps)
    change = (attack(x, torch.zeros(len(x), dtype=torch.long)) - x)[interior(x, eps)]
    torch.testing.assert_close(change.abs(), torch.full_like(change, eps), rtol=0, atol=1e-6)
    assert abs((change > 0).float().mean() - 0.5) < 0.01
    assert attack.norm == "linf"


def test_trunc_normal_stays_within_eps_with_the_truncated_std(cifar_16):
    x, eps = cifar_16, 0.1
    change = build("trunc_normal", small_cnn(), eps=eps)(x, torch.zeros(len(x), dtype=torch.long)) - x
    assert change.abs().max() <= eps + 1e-6
    free = change[interior(x, eps)]
    # The std of N(0, s^2) truncated to +-2s is s * sqrt(1 - 4 phi(2) / (2 Phi(2) - 1)).
    two_sigma = torch.distributions.Normal(0.0, 1.0)
    mass = 2 * two_sigma.cdf(torch.tensor(2.0)) - 1
    expected = eps / 2 * math.sqrt(1 - 4 * two_sigma.log_prob(torch.tensor(2.0)).exp() / mass)
    assert free.std() == pytest.approx(expected, rel=0.02)
    assert abs(free.mean()) < 0.01 * eps


@pytest.mark.parametrize(("eps", "sigma"), [(0.05, None), (0.01, 0.02)])
def test_gaussian_noise_has_std_sigma_or_eps(eps, sigma, cifar_16):
    x = cifar_16
    attack = build("gaussian", small_cnn(), eps=eps, sigma=sigma)
    change = attack(x, torch.zeros(len(x), dtype=torch.long)) - x
    expected = eps if sigma is None else sigma
    assert change[interior(x, 6 * expected)].std() == pytest.approx(expected, rel=0.02)
    assert attack.norm is None and change.abs().max() > eps  # no ball, only [0, 1]


@pytest.mark.parametrize("name", ["gaussian", "random_sign", "trunc_normal"])
def test_noise_follows_the_seed(name, cifar_16):
    x, y, model = cifar_16, torch.zeros(len(cifar_16), dtype=torch.long), small_cnn()
    first = build(name, model, eps=0.1, seed=0)(x, y)
    assert torch.equal(build(name, model, eps=0.1, seed=0)(x, y), first)
    assert not torch.equal(build(name, model, eps=0.1, seed=1)(x, y), first)


def test_transfer_lowers_accuracy_but_no_more_than_white_box_pgd(target, fashion_200, sources):
    x, y = fashion_200
    attack = build("transfer", target, eps=0.1, source_ckpt=sources["fashion_cnn"])

    x_adv = attack(x, y)

    white_box = accuracy(target, build("pgd_linf", target, eps=0.1)(x, y), y)
    assert white_box <= accuracy(target, x_adv, y) < accuracy(target, x, y) - 0.05
    assert_inside_the_threat_model(attack, x_adv, x)
    # Crafted without early stopping: all 10 PGD steps on every point, none on the target.
    assert attack.source.stop_top_k is None  # runs every step
    assert attack.stats == {"gradient_passes": 0, "source_gradient_passes": 10 * len(x)}


def test_transfer_from_an_ensemble_averages_its_logits(target, target_ckpt, fashion_200, sources):
    x, y = fashion_200[0][:64], fashion_200[1][:64]
    cnn = sources["fashion_cnn"]
    single = build("transfer", target, eps=0.1, source_ckpt=cnn)(x, y)
    pair = build("transfer", target, eps=0.1, source_ckpt=[cnn, cnn])
    assert len(pair.sources.members) == 2
    assert torch.equal(pair(x, y), single)  # the mean of two equal logits is those logits
    half_white_box = build("transfer", target, eps=0.1, source_ckpt=[cnn, target_ckpt])(x, y)
    assert accuracy(target, half_white_box, y) < accuracy(target, single, y)


def test_transfer_takes_the_source_attacks_norm_eps_and_params(target, fashion_200, sources):
    x, y = fashion_200[0][:64], fashion_200[1][:64]
    attack = build("transfer", target, eps=1.5, source_ckpt=sources["fashion_cnn"],
                   source_attack="pgd_l2", source_params={"steps": 3, "early_stop": True})
    x_adv = attack(x, y)
    assert attack.norm == "l2" and attack.eps == 1.5 and attack.source.stop_top_k == 1
    assert_inside_the_threat_model(attack, x_adv, x)
    assert 0 < attack.stats["source_gradient_passes"] <= 3 * len(x)


def test_transfer_on_three_channel_images(cifar_root, sources):
    x = cifar_test_images(cifar_root, 64)[0]
    model = small_cnn().eval()
    with torch.no_grad():
        y = model(x).argmax(1)
    attack = build("transfer", model, eps=0.1, source_ckpt=sources["cifar_mlp"])
    x_adv = attack(x, y)
    assert_inside_the_threat_model(attack, x_adv, x)
    assert (x_adv != x).any()


def test_transfer_refuses_sources_that_do_not_fit(cifar_16, sources, target_ckpt):
    x, y = cifar_16, torch.zeros(len(cifar_16), dtype=torch.long)
    hundred_classes = build("transfer", linear_head(100).eval(), eps=0.1,
                            source_ckpt=sources["cifar_mlp"])
    with pytest.raises(UserError, match="predicts 10 classes, the target model 100"):
        hundred_classes(x, y)
    wrong_shape = build("transfer", small_cnn().eval(), eps=0.1, source_ckpt=target_ckpt)
    with pytest.raises(UserError, match=r"does not take inputs of shape \(3, 32, 32\)"):
        wrong_shape(x, y)


def test_transfer_without_a_source_checkpoint_is_a_user_error(target, tmp_path):
    with pytest.raises(UserError, match="checkpoint not found"):
        build("transfer", target, eps=0.1, source_ckpt=str(tmp_path / "missing.ckpt"))
    with pytest.raises(UserError, match="source_ckpt is required"):
        build("transfer", target, eps=0.1, source_ckpt=None)
