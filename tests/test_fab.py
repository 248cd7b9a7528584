"""FAB: its box-constrained projection, strength and minimality against PGD on a trained
Fashion-MNIST MLP, the L2 version, restarts, per-point results and parameter checks."""

import pytest
import torch
from test_attacks import (  # noqa: F401 (trained_mlp is a fixture)
    accuracy,
    assert_inside_the_threat_model,
    fashion_split,
    perturbation_norms,
    trained_mlp,
)
from torch import nn

from robustbench_cli.attacks import build
from robustbench_cli.attacks.fab import project_on_hyperplane


@pytest.fixture(scope="module")
def points(fashion_root):
    return fashion_split(fashion_root, "t10k", 200)


def fooled_norms(model, x_adv, x, y, norm):
    """The perturbation norms of the points the attack fooled (not those wrong when clean)."""
    with torch.no_grad():
        fooled = (model(x_adv).argmax(1) != y) & (model(x).argmax(1) == y)
    return perturbation_norms(x_adv, x, norm)[fooled]


def correct_points(model, x, y):
    with torch.no_grad():
        return model(x).argmax(1) == y


def random_problems(count=64, size=40):
    generator = torch.Generator().manual_seed(0)
    t = torch.rand(count, size, generator=generator, dtype=torch.float64)
    w = torch.randn(count, size, generator=generator, dtype=torch.float64)
    w[:, :5] = 0  # coordinates the hyperplane does not depend on stay put
    c = torch.randn(count, generator=generator, dtype=torch.float64)
    return t, w, c


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_projection_reaches_the_hyperplane_with_the_least_step_in_the_box(norm):
    t, w, c = random_problems()
    d = project_on_hyperplane(t, w, c, norm)
    assert torch.allclose(c + (w * d).sum(1), torch.zeros_like(c), atol=1e-10)
    assert (t + d).min() >= -1e-12 and (t + d).max() <= 1 + 1e-12
    assert (d[:, :5] == 0).all()
    # Least: for L-inf, a radius any smaller cannot move <w, .> by |c| (at radius r it moves
    # at most sum |w_i| min(r, room_i)); for L2, the KKT conditions: d = clip(-lam w), the
    # same lam in every coordinate, clipped to the box.
    toward = w * c.sign()[:, None]  # <toward, .> must drop
    if norm == "linf":
        room = torch.where(toward > 0, t, 1 - t)
        radius = d.abs().amax(1, keepdim=True) * (1 - 1e-6)
        assert ((w.abs() * torch.minimum(radius, room)).sum(1) < c.abs()).all()
    else:
        free = (w != 0) & (t + d > 1e-9) & (t + d < 1 - 1e-9)
        lam = torch.where(free, -d / toward, torch.nan).nanmedian(1, keepdim=True).values
        torch.testing.assert_close(d, torch.clamp(-lam * toward, -t, 1 - t))
    # Far from the box's faces it is the plain projection: c / ||w||_1 along sign(w), or
    # c w / ||w||^2.
    small = 1e-3 * c
    inner = project_on_hyperplane(torch.full_like(t, 0.5), w, small, norm)
    if norm == "linf":
        expected = -(small / w.abs().sum(1))[:, None] * w.sign()
    else:
        expected = -(small / (w**2).sum(1))[:, None] * w
    torch.testing.assert_close(inner, expected)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_projection_out_of_reach_goes_as_far_as_the_box_allows(norm):
    t, w, c = random_problems()
    d = project_on_hyperplane(t, w, 1e6 * c, norm)
    corner = torch.where(w * c[:, None] > 0, -t, 1 - t).masked_fill(w == 0, 0)
    torch.testing.assert_close(d, corner)


@pytest.mark.parametrize("params", [{}, {"target_classes": 3}], ids=["fab", "fab_t"])
def test_fab_is_as_strong_as_pgd_inside_the_ball(params, trained_mlp, points):  # noqa: F811
    x, y = points
    attack = build("fab", trained_mlp, eps=0.1, **params)
    x_adv = attack(x, y)

    assert_inside_the_threat_model(attack, x_adv, x)
    fab = accuracy(trained_mlp, x_adv, y)
    pgd = accuracy(trained_mlp, build("pgd_linf", trained_mlp, eps=0.1)(x, y), y)
    # Measured: clean 0.76, PGD (10 steps) 0.26, FAB 0.25, FAB-T 0.245.
    assert abs(fab - pgd) <= 0.03, (fab, pgd)
    assert fab < accuracy(trained_mlp, x, y) - 0.4
    with torch.no_grad():
        wrong = trained_mlp(x).argmax(1) != y
    assert torch.equal(x_adv[wrong], x[wrong])  # already adversarial: nothing to do


def test_fab_perturbations_are_smaller_than_pgds(trained_mlp, points):  # noqa: F811
    x, y = points
    eps = 0.3  # both fool every point; PGD goes to the ball's edge, FAB to the boundary
    fab = fooled_norms(trained_mlp, build("fab", trained_mlp, eps=eps)(x, y), x, y, "linf")
    pgd = fooled_norms(trained_mlp, build("pgd_linf", trained_mlp, eps=eps)(x, y), x, y, "linf")
    assert len(fab) == len(pgd) > 100
    # Measured: medians 0.077 and 0.3.
    assert fab.median() < 0.5 * pgd.median()


def test_l2_fab_stays_in_the_l2_ball(trained_mlp, points):  # noqa: F811
    x, y = points
    attack = build("fab", trained_mlp, eps=1.0, norm="l2", steps=30)
    x_adv = attack(x, y)

    assert_inside_the_threat_model(attack, x_adv, x)
    pgd_adv = build("pgd_l2", trained_mlp, eps=1.0)(x, y)
    fab, pgd = accuracy(trained_mlp, x_adv, y), accuracy(trained_mlp, pgd_adv, y)
    assert fab <= pgd + 0.01, (fab, pgd)  # measured: 0.48 and 0.505
    assert fooled_norms(trained_mlp, x_adv, x, y, "l2").median() < \
        fooled_norms(trained_mlp, pgd_adv, x, y, "l2").median()


def test_early_stop_changes_the_cost_not_who_is_fooled(trained_mlp, points):  # noqa: F811
    x, y = points
    full = build("fab", trained_mlp, eps=0.1, steps=10, early_stop=False)
    early = build("fab", trained_mlp, eps=0.1, steps=10)
    full_adv, early_adv = full(x, y), early(x, y)

    assert accuracy(trained_mlp, full_adv, y) == accuracy(trained_mlp, early_adv, y)
    correct = int((trained_mlp(x).argmax(1) == y).sum())
    # A gradient pass per other class, per step, per point attacked.
    assert full.stats["gradient_passes"] == 10 * 9 * correct
    assert early.stats["gradient_passes"] < full.stats["gradient_passes"] / 2
    # Without early stopping a point walks on to a nearer adversarial point.
    assert fooled_norms(trained_mlp, full_adv, x, y, "linf").median() < \
        fooled_norms(trained_mlp, early_adv, x, y, "linf").median()
    # FAB-T: one gradient pass per step and point for its one target.
    targeted = build("fab", trained_mlp, eps=0.1, steps=10, target_classes=1, early_stop=False)
    targeted(x, y)
    assert targeted.stats["gradient_passes"] == 10 * correct


def dead_relu_model() -> nn.Module:
    """Class 1 wins once an 8x8 image's pixel sum passes 32.01, through a ReLU that is off
    below 32: at a point whose sum is below 32 the gradient vanishes and FAB cannot move."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 1), nn.ReLU(), nn.Linear(1, 2))
    with torch.no_grad():
        model[1].weight.fill_(1)
        model[1].bias.fill_(-32)
        model[3].weight.copy_(torch.tensor([[0.0], [10.0]]))
        model[3].bias.copy_(torch.tensor([0.1, 0.0]))
    return model.eval()


@pytest.fixture(scope="module")
def stuck():
    """The dead-ReLU model and 40 images of pixel sum 31.968, all classified 0."""
    generator = torch.Generator().manual_seed(0)
    x = 0.3 + 0.4 * torch.rand(40, 1, 8, 8, generator=generator)
    x = x - x.mean((1, 2, 3), keepdim=True) + 0.4995
    return dead_relu_model(), x, torch.zeros(40, dtype=torch.long)


@pytest.mark.parametrize(("norm", "eps"), [("linf", 0.05), ("l2", 0.3)])
def test_random_restarts_follow_the_seed_and_rescue_points_with_no_gradient(norm, eps, stuck):
    model, x, y = stuck
    params = {"eps": eps, "norm": norm, "steps": 20}
    assert torch.equal(build("fab", model, **params)(x, y), x)  # the first run cannot move
    attack = build("fab", model, restarts=4, **params)
    x_adv = attack(x, y)
    # Measured: 0.325 (L-inf) and 0.125 (L2) left.
    assert accuracy(model, x_adv, y) < 0.5
    assert_inside_the_threat_model(attack, x_adv, x)
    assert torch.equal(build("fab", model, restarts=4, **params)(x, y), x_adv)
    assert not torch.equal(build("fab", model, restarts=4, seed=1, **params)(x, y), x_adv)


@pytest.mark.parametrize(
    "case",
    [("mlp", {}), ("mlp", {"target_classes": 2, "norm": "l2", "eps": 1.0}),
     ("stuck", {"restarts": 3}), ("stuck", {"restarts": 3, "norm": "l2", "eps": 0.3})],
    ids=["linf", "l2_targeted", "restarts_linf", "restarts_l2"],
)
def test_a_points_result_does_not_depend_on_its_batch(case, trained_mlp, points, stuck):  # noqa: F811
    which, params = case
    if which == "mlp":
        model, (x, y) = trained_mlp, (points[0][:40], points[1][:40])
    else:
        model, x, y = stuck
    params = {"eps": 0.05, "steps": 10, **params}
    index = torch.arange(len(x)) + 1000
    whole = build("fab", model, **params)(x, y, index=index)
    # Alone, and shuffled into uneven batches: each point gets what it got in the batch, up
    # to rounding (BLAS sums a lone point in another order), which the final search scales
    # up where the margin is a difference of nearly equal sums, as in the dead-ReLU model.
    attack = build("fab", model, **params)
    alone = torch.cat([attack(x[i:i + 1], y[i:i + 1], index=index[i:i + 1]) for i in range(8)])
    torch.testing.assert_close(alone, whole[:8], rtol=0, atol=1e-4)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(5))
    shuffled = torch.empty_like(x)
    for rows in order.split(7):
        shuffled[rows] = attack(x[rows], y[rows], index=index[rows])
    torch.testing.assert_close(shuffled, whole, rtol=0, atol=1e-4)
    # FAB ends on the boundary: a point there may land on either side by rounding alone
    # (seen on one machine's BLAS for one point of the dead-ReLU model).
    flipped = correct_points(model, shuffled, y) != correct_points(model, whole, y)
    assert flipped.sum() <= 2, flipped.nonzero()
    assert (whole != x).any()


def test_l2_eps_may_exceed_one_and_configs_read_as_typed(trained_mlp):  # noqa: F811
    attack = build("fab", trained_mlp, name="fab", eps="8/255", norm="LINF", target_classes=9.0,
                   early_stop="false")
    assert attack.eps == pytest.approx(8 / 255) and attack.norm == "linf"
    assert attack.target_classes == 9 and attack.stop_top_k is None
    assert build("fab", trained_mlp, eps=3.0, norm="l2").eps == 3.0
