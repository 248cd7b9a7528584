"""The Square attack on real data: strength from queries alone, the threat model, per-point
randomness, the query budget, the paper's schedule and bump, parameter checks."""

import pytest
import torch
from test_attacks import (  # noqa: F401 (fixtures)
    accuracy,
    assert_inside_the_threat_model,
    cifar_images,
    fashion_test,
    small_cnn,
    trained_mlp,
)
from torch import nn

from robustbench_cli.attacks import build
from robustbench_cli.attacks.square import Square, square_bump
from robustbench_cli.errors import UserError


class CountingBlackBox(nn.Module):
    """The model as a black box: fails if run with autograd on; counts the images it sees."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.images = 0

    def forward(self, x):
        assert not torch.is_grad_enabled() and not x.requires_grad
        self.images += len(x)
        return self.model(x)


@pytest.fixture(scope="module")
def fashion_200(fashion_test):  # noqa: F811
    return fashion_test[0][:200], fashion_test[1][:200]


def test_square_lowers_accuracy_far_below_noise_and_more_queries_help(trained_mlp, fashion_200):  # noqa: F811
    x, y = fashion_200
    clean = accuracy(trained_mlp, x, y)
    noise = accuracy(trained_mlp, build("random_sign", trained_mlp, eps=0.1)(x, y), y)
    fewer = accuracy(trained_mlp, build("square", trained_mlp, eps=0.1, queries=100)(x, y), y)
    more = accuracy(trained_mlp, build("square", trained_mlp, eps=0.1, queries=300)(x, y), y)
    # Measured: clean 0.75, random sign 0.725, 100 queries 0.54, 300 queries 0.38.
    assert more < noise - 0.25 and more < clean - 0.25
    assert more <= fewer < noise


def test_cross_entropy_loss_also_works(trained_mlp, fashion_200):  # noqa: F811
    x, y = fashion_200
    x_adv = build("square", trained_mlp, eps=0.1, queries=200, loss="ce")(x, y)
    assert accuracy(trained_mlp, x_adv, y) < accuracy(trained_mlp, x, y) - 0.2


@pytest.mark.parametrize(("norm", "eps"), [("linf", 0.1), ("l2", 1.0)])
def test_result_stays_in_the_ball_and_in_range(norm, eps, fashion_200, cifar_images, trained_mlp):  # noqa: F811
    cnn = small_cnn().eval()
    with torch.no_grad():
        cifar_labels = cnn(cifar_images[0]).argmax(1)
    fashion = (fashion_200[0][:64], fashion_200[1][:64])
    for model, x, y in [(trained_mlp, *fashion), (cnn, cifar_images[0], cifar_labels)]:
        attack = build("square", model, eps=eps, norm=norm, queries=100, early_stop=False)
        x_adv = attack(x, y)
        assert_inside_the_threat_model(attack, x_adv, x)
        if norm == "linf":
            # Every pixel is at a corner of its interval: x + eps or x - eps, clipped.
            corner = (x_adv == (x + eps).clamp(0, 1)) | (x_adv == (x - eps).clamp(0, 1))
            assert corner.all()
        else:
            # The search stays on the sphere, up to clipping at 0 and 1.
            norms = (x_adv - x).flatten(1).norm(dim=1)
            assert norms.max() <= eps + 1e-5 and norms.median() > 0.9 * eps


class RowByRow(nn.Module):
    """The model run on one image at a time: its outputs, to the last bit, do not depend on
    the batch (a batched matmul may round a row differently at another batch size, and one
    flipped comparison of nearly equal losses sends a random search elsewhere)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return torch.cat([self.model(row[None]) for row in x])


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_a_points_result_depends_on_the_index_and_seed_not_the_batch(norm, trained_mlp, fashion_200):  # noqa: F811
    x, y = fashion_200[0][:8], fashion_200[1][:8]
    model = RowByRow(trained_mlp)
    # Past one block of draws (100 iterations), so that the next block is drawn too.
    params = {"eps": 0.1 if norm == "linf" else 1.0, "norm": norm, "queries": 110,
              "early_stop": False}
    index = torch.arange(8) + 500
    batch = build("square", model, **params)(x, y, index=index)
    attack = build("square", model, **params)
    alone = torch.cat([attack(x[i:i + 1], y[i:i + 1], index=index[i:i + 1]) for i in range(8)])
    assert torch.equal(alone, batch)
    assert not torch.equal(build("square", model, seed=1, **params)(x, y, index=index), batch)
    assert not torch.equal(build("square", model, **params)(x, y, index=index + 1), batch)


def test_queries_are_counted_per_point_within_the_budget(trained_mlp, fashion_200):  # noqa: F811
    x, y = fashion_200
    model = CountingBlackBox(trained_mlp)
    early = build("square", model, eps=0.1, queries=200)
    x_adv = early(x, y)
    spent = early.point_queries
    assert early.stats["queries"] == spent.sum() == model.images
    assert early.stats["gradient_passes"] == 0
    assert spent.max() <= 200 and spent.min() >= 1
    with torch.no_grad():
        fooled = model.model(x_adv).argmax(1) != y
        wrong_at_start = model.model(x).argmax(1) != y
    # A fooled point stopped at its fooling query; a point still correct used the budget.
    assert fooled[spent < 200].all() and (spent[~fooled] == 200).all()
    assert (spent < 200).sum() > 50 and (spent[wrong_at_start] == 1).any()

    model.images = 0
    full = build("square", model, eps=0.1, queries=200, early_stop=False)
    full(x, y)
    assert (full.point_queries == 200).all() and full.stats["queries"] == model.images == 200 * 200


def test_schedule_halves_the_square_area_at_the_papers_iterations(trained_mlp):  # noqa: F811
    linf = build("square", trained_mlp, eps=0.1, queries=10000)
    shape = (1, 1, 28, 28)
    # sqrt(p * 784) with p = 0.8 / 2^k, k halvings after paper iterations 10, 50, ..., 8000.
    sides = {step: linf._side(step, shape) for step in (0, 10, 11, 50, 51, 8000, 8001, 9998)}
    assert sides == {0: 25, 10: 25, 11: 18, 50: 18, 51: 13, 8000: 2, 8001: 1, 9998: 1}
    # Rescaled to the budget: with 1000 queries the first halving comes after iteration 1.
    assert build("square", trained_mlp, eps=0.1, queries=1000)._side(2, shape) == 18
    l2 = build("square", trained_mlp, eps=1.0, norm="l2", queries=10000)
    assert l2._side(11, shape) == 19 and l2._side(9998, shape) == 3  # odd, at least 3
    assert linf._side(0, (1, 3, 4, 30)) == 4  # capped by the shorter side


def reference_bump(rows: int, cols: int) -> torch.Tensor:
    """The paper's rings loop for one half of the L2 bump."""
    delta = torch.zeros(rows, cols, dtype=torch.float64)
    centre_r, centre_c = rows // 2, cols // 2
    for ring in range(max(rows, cols) // 2 + 1):
        delta[max(centre_r - ring, 0):centre_r + ring + 1,
              max(centre_c - ring, 0):centre_c + ring + 1] += 1 / (ring + 1) ** 2
    return delta / delta.norm()


@pytest.mark.parametrize("side", [3, 5, 8, 25])
def test_the_l2_bump_is_the_papers(side):
    half = side // 2
    expected = torch.cat([reference_bump(half, side), -reference_bump(side - half, side)])
    expected /= expected.norm()
    torch.testing.assert_close(square_bump(side), expected)


def test_l2_eps_may_exceed_one_and_flat_inputs_are_refused(trained_mlp, fashion_200):  # noqa: F811
    attack = build("square", trained_mlp, eps=3.0, norm="L2")
    assert isinstance(attack, Square) and attack.norm == "l2" and attack.eps == 3.0
    x, y = fashion_200
    with pytest.raises(UserError, match=r"images \(N, C, H, W\)"):
        attack(x.flatten(1), y)
