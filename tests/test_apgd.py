"""APGD (Croce & Hein 2020) on a trained Fashion-MNIST MLP: strength against PGD, the DLR and
targeted losses, the L2 ball, per-point independence, step-size halving, bad parameters."""

import pytest
import torch
from test_attacks import (  # noqa: F401 (fixtures)
    accuracy,
    assert_inside_the_threat_model,
    fashion_test,
    trained_mlp,
)
from torch import nn

from robustbench_cli.attacks import build
from robustbench_cli.attacks.apgd import checkpoints
from robustbench_cli.attacks.base import in_top_k
from robustbench_cli.errors import UserError


def test_checkpoints_follow_the_paper():
    # p = 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 of the iterations.
    assert checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(10) == [0, 3, 5, 6, 7, 8, 9]  # rounded up; 9.3 and 9.9 reach the end
    assert checkpoints(1) == [0]


def test_apgd_ce_is_at_least_as_strong_as_pgd(trained_mlp, fashion_test):  # noqa: F811
    x, y = fashion_test
    pgd = build("pgd_linf", trained_mlp, eps=0.1, steps=20)
    apgd = build("apgd", trained_mlp, eps=0.1, steps=20)
    pgd_accuracy = accuracy(trained_mlp, pgd(x, y), y)
    apgd_accuracy = accuracy(trained_mlp, apgd(x, y), y)
    assert apgd_accuracy <= pgd_accuracy + 0.005, (apgd_accuracy, pgd_accuracy)
    assert apgd_accuracy < accuracy(trained_mlp, x, y) - 0.3
    assert apgd.stats["gradient_passes"] <= pgd.stats["gradient_passes"]


@pytest.mark.parametrize("params", [{"loss": "dlr"}, {"loss": "dlr", "target_classes": 3},
                                    {"norm": "l2"}, {"norm": "l2", "loss": "dlr", "restarts": 2}])
def test_losses_and_norms_stay_in_the_ball_and_fool(params, trained_mlp, fashion_test):  # noqa: F811
    x, y = fashion_test[0][:200], fashion_test[1][:200]
    eps = 2.0 if params.get("norm") == "l2" else 0.1
    attack = build("apgd", trained_mlp, eps=eps, steps=20, **params)
    x_adv = attack(x, y)
    assert_inside_the_threat_model(attack, x_adv, x)
    assert accuracy(trained_mlp, x_adv, y) < accuracy(trained_mlp, x, y) - 0.3
    # Later targets and restarts run only on the points still unfooled.
    runs = params.get("target_classes", 1) * params.get("restarts", 1)
    assert attack.stats["gradient_passes"] < runs * 20 * len(x)


def test_targeted_runs_add_to_the_untargeted_loss(trained_mlp, fashion_test):  # noqa: F811
    x, y = fashion_test[0][:300], fashion_test[1][:300]
    one = accuracy(trained_mlp, build("apgd", trained_mlp, eps=0.05, steps=20, loss="dlr",
                                      target_classes=1)(x, y), y)
    three = accuracy(trained_mlp, build("apgd", trained_mlp, eps=0.05, steps=20, loss="dlr",
                                        target_classes=3)(x, y), y)
    assert three <= one < accuracy(trained_mlp, x, y)


@pytest.mark.parametrize("params", [{"eps": 0.05}, {"eps": 1.0, "norm": "l2", "loss": "dlr"},
                                    {"eps": 0.05, "loss": "dlr", "target_classes": 2,
                                     "early_stop": False}])
def test_a_points_result_does_not_depend_on_its_batch(params, trained_mlp, fashion_test):  # noqa: F811
    x, y = fashion_test[0][:40], fashion_test[1][:40]
    whole = build("apgd", trained_mlp, steps=15, **params)(x, y)
    attack = build("apgd", trained_mlp, steps=15, **params)
    alone = torch.cat([attack(x[i:i + 1], y[i:i + 1], index=torch.tensor([i])) for i in range(8)])
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(3))
    shuffled = torch.empty_like(x)
    for rows in order.split(7):
        shuffled[rows] = attack(x[rows], y[rows], index=rows)
    # The BLAS kernels pick their blocking by batch size, so logits differ in the last bits: a
    # near-zero gradient component may flip its sign, or a step-size halving come one check
    # later, and a point's path part. A start or step drawn per batch would move nearly every
    # pixel of every point.
    for other in (alone, shuffled):
        same = ((other - whole[:len(other)]).abs() <= 1e-5).flatten(1).float().mean(1)
        assert (same > 0.99).float().mean() >= 0.9, same


def test_the_seed_sets_the_start(trained_mlp, fashion_test):  # noqa: F811
    x, y = fashion_test[0][:64], fashion_test[1][:64]
    first = build("apgd", trained_mlp, eps=0.1, steps=5, seed=0)(x, y)
    assert torch.equal(build("apgd", trained_mlp, eps=0.1, steps=5, seed=0)(x, y), first)
    assert not torch.equal(build("apgd", trained_mlp, eps=0.1, steps=5, seed=1)(x, y), first)


def test_each_point_keeps_its_first_fooling_iterate(trained_mlp, fashion_test):  # noqa: F811
    # A point's path does not depend on the others, so stopping it at its first fooling
    # iterate returns what running every step and keeping that iterate returns, cheaper.
    x, y = fashion_test[0][:300], fashion_test[1][:300]
    full = build("apgd", trained_mlp, eps=0.05, steps=20, early_stop=False)
    early = build("apgd", trained_mlp, eps=0.05, steps=20)
    torch.testing.assert_close(early(x, y), full(x, y), rtol=0, atol=1e-6)
    assert full.stats["gradient_passes"] == 20 * len(x)
    assert early.stats["gradient_passes"] < full.stats["gradient_passes"]


def test_top5_stopping_keeps_the_top1_fooling_iterates(trained_mlp, fashion_test):  # noqa: F811
    x, y = fashion_test[0][:300], fashion_test[1][:300]
    top1 = build("apgd", trained_mlp, eps=0.05, steps=20)
    top5 = build("apgd", trained_mlp, eps=0.05, steps=20)
    top5.stop_at(5)
    with torch.no_grad():
        logits1, logits5 = trained_mlp(top1(x, y)), trained_mlp(top5(x, y))
    # Points stay on the same path until misclassified, and keep that iterate if they never
    # leave the top 5: the same points are fooled at top-1, more at top-5.
    assert torch.equal(logits1.argmax(1) == y, logits5.argmax(1) == y)
    assert in_top_k(logits5, y, 5).sum() < in_top_k(logits1, y, 5).sum()
    assert top5.stats["gradient_passes"] > top1.stats["gradient_passes"]


def test_step_sizes_are_halved_at_checkpoints(trained_mlp, fashion_test):  # noqa: F811
    x, y = fashion_test[0][:100], fashion_test[1][:100]
    attack = build("apgd", trained_mlp, eps=0.1, steps=30, early_stop=False)
    attack(x, y)
    halvings = torch.log2(2 * 0.1 / attack.step_sizes)  # from 2 eps, halved at checkpoints
    assert len(checkpoints(30)[1:]) == 7
    assert torch.allclose(halvings, halvings.round(), atol=1e-4)
    assert (halvings >= 1 - 1e-4).float().mean() > 0.9 and halvings.max() <= 7 + 1e-4
    assert attack.stats["step_halvings"] == int(halvings.round().sum())


def test_l2_eps_may_exceed_one(trained_mlp):  # noqa: F811
    assert build("apgd", trained_mlp, eps=3.0, norm="l2").eps == 3.0


@pytest.mark.parametrize(
    ("classes", "params", "message"),
    [
        (2, {"loss": "dlr"}, "attack apgd: loss=dlr needs at least 3 classes, the model predicts 2"),
        (3, {"loss": "dlr", "target_classes": 1},
         "attack apgd: targeted DLR (target_classes > 0) needs at least 4 classes, the model predicts 3"),
    ],
)
def test_dlr_needs_enough_classes(classes, params, message, fashion_test):  # noqa: F811
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, classes)).eval()
    x = fashion_test[0][:4]
    with pytest.raises(UserError) as error:
        build("apgd", model, eps=0.1, **params)(x, torch.zeros(4, dtype=torch.long))
    assert str(error.value) == message
    # Cross-entropy needs no more than two classes.
    build("apgd", model, eps=0.1, steps=2)(x, torch.zeros(4, dtype=torch.long))
