"""attack=torchattacks: the library's attacks under our protocol, on real Fashion-MNIST, against
the library called directly and our own attacks; its refusals; the real `robust eval`."""

import json
import sys

import pytest
import torch
import torchattacks
from helpers import compose, ok, robust
from test_attacks import (  # noqa: F401 (fixtures)
    accuracy,
    cifar_images,
    fashion_test,
    perturbation_norms,
    small_cnn,
    trained_mlp,
)

from robustbench_cli.attacks import build
from robustbench_cli.errors import UserError


def test_pgd_agrees_with_torchattacks_called_directly(trained_mlp, fashion_test):  # noqa: F811
    x, y = fashion_test
    torch.manual_seed(0)
    direct = torchattacks.PGD(trained_mlp, eps=0.1, alpha=0.025, steps=10)(x, y)
    attack = build("torchattacks", trained_mlp, eps=0.1, cls="PGD",
                   kwargs={"alpha": 0.025, "steps": 10})
    x_adv = attack(x, y)
    ours, theirs = accuracy(trained_mlp, x_adv, y), accuracy(trained_mlp, direct, y)
    assert abs(ours - theirs) <= 0.02, (ours, theirs)
    assert ours < accuracy(trained_mlp, x, y) - 0.3
    assert perturbation_norms(x_adv, x, "linf").max() <= 0.1 + 1e-6
    assert attack.stats == {"gradient_passes": 10 * len(x), "queries": 0}


def test_fgsm_is_our_fgsm(trained_mlp, fashion_test):  # noqa: F811
    x, y = fashion_test
    # torchattacks averages the loss over the batch, we sum it: the same signs.
    torch.testing.assert_close(build("torchattacks", trained_mlp, eps=0.1, cls="fgsm")(x, y),
                               build("fgsm", trained_mlp, eps=0.1)(x, y), rtol=0, atol=1e-6)


def test_cw_without_a_ball_fools_and_with_one_is_cut_back(trained_mlp, fashion_test):  # noqa: F811
    x, y = fashion_test[0][:200], fashion_test[1][:200]
    unbounded = build("torchattacks", trained_mlp, eps=1, cls="CW", norm="none",
                      kwargs={"c": 10, "steps": 30, "lr": 0.05})(x, y)
    assert accuracy(trained_mlp, unbounded, y) < accuracy(trained_mlp, x, y) - 0.3
    distances = perturbation_norms(unbounded, x, "l2")
    assert distances.max() > 0.5  # no projection: eps does not bound it
    bounded = build("torchattacks", trained_mlp, eps=0.5, cls="CW", norm="l2",
                    kwargs={"c": 10, "steps": 30, "lr": 0.05})(x, y)
    assert perturbation_norms(bounded, x, "l2").max() <= 0.5 + 1e-5
    # The same run, cut back to the L2 ball: examples already inside it are kept.
    inside = distances <= 0.5
    assert torch.equal(bounded[inside], unbounded[inside])


def test_a_random_attack_follows_the_seed_and_leaves_the_global_rng_alone(
        trained_mlp, fashion_test):  # noqa: F811
    x, y = fashion_test[0][:64], fashion_test[1][:64]

    def pgd(seed, index=None):
        return build("torchattacks", trained_mlp, eps=0.1, cls="PGD", seed=seed)(x, y, index=index)

    state = torch.get_rng_state()
    first = pgd(0)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(pgd(0), first)
    assert torch.equal(pgd(0, index=torch.arange(64)), first)
    assert not torch.equal(pgd(1), first)
    assert not torch.equal(pgd(0, index=torch.arange(64) + 1), first)  # seeded by the first index


def test_model_mode_batchnorm_and_gradients_are_restored(cifar_images):  # noqa: F811
    model = small_cnn().train()
    model[-1].eval()
    statistics = {k: v.clone() for k, v in model[1].state_dict().items()}
    attack = build("torchattacks", model, eps=0.03, cls="CW", norm="l2", kwargs={"steps": 3})
    attack(*cifar_images)
    assert model.training and model[1].training and not model[-1].training
    assert all(torch.equal(v, statistics[k]) for k, v in model[1].state_dict().items())
    assert all(p.grad is None and p.requires_grad for p in model.parameters())


def test_it_works_when_called_under_inference_mode(trained_mlp, fashion_test):  # noqa: F811
    with torch.inference_mode():
        x, y = fashion_test[0][:32].clone(), fashion_test[1][:32].clone()
        x_adv = build("torchattacks", trained_mlp, eps=0.1, cls="PGD")(x, y)
    assert accuracy(trained_mlp, x_adv, y) < accuracy(trained_mlp, x, y)


def test_the_ball_argument_and_seed_reach_classes_that_take_them(trained_mlp):  # noqa: F811
    attack = build("torchattacks", trained_mlp, eps=2.0, cls="APGD", norm="l2", seed=3)
    assert (attack.wrapped.norm, attack.wrapped.eps, attack.wrapped.seed) == ("L2", 2.0, 3)
    alpha = build("torchattacks", trained_mlp, eps=0.1, cls="PGD", kwargs={"alpha": "1/255"})
    assert alpha.wrapped.alpha == pytest.approx(1 / 255)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"cls": "Nope"}, "unknown cls 'Nope'; choose from: APGD, APGDT, AutoAttack, BIM, CW"),
        ({"cls": "MultiAttack"}, "unknown cls 'MultiAttack'"),
        ({"kwargs": {"eps": 0.2}}, "kwargs cannot set eps: the run's eps is passed on"),
        ({"cls": "PGD", "kwargs": {"stepz": 5}},
         "torchattacks PGD has no argument 'stepz'; its arguments: alpha, steps, random_start"),
        ({"kwargs": {"seed": 1}}, "kwargs cannot set seed: use attack.seed"),
        ({"cls": "APGD", "kwargs": {"norm": "L2"}}, "kwargs cannot set norm: use attack.norm"),
        ({"cls": "CW"}, "torchattacks CW is an l2 attack, not linf: set attack.norm to l2 or none"),
        ({"cls": "PGD", "norm": "l2"}, "PGD is an linf attack, not l2"),
        ({"norm": "l1"}, "norm must be one of linf, l2, none"),
        ({"kwargs": [1]}, "kwargs must be a mapping"),
        ({"kwargs": {"decay": "a/b"}, "cls": "MIFGSM"}, "kwargs.decay must be a number"),
        ({"eps": 1.5}, "eps must be <= 1"),
        ({"seed": -1}, "seed must be a non-negative integer"),
    ],
)
def test_bad_parameters_raise_user_error(params, message, trained_mlp):  # noqa: F811
    with pytest.raises(UserError, match="^attack torchattacks: ") as error:
        build("torchattacks", trained_mlp, **{"eps": 0.1, **params})
    assert message in str(error.value)


def test_without_torchattacks_the_error_says_what_to_install(monkeypatch, trained_mlp):  # noqa: F811
    monkeypatch.setitem(sys.modules, "torchattacks", None)  # import fails
    with pytest.raises(UserError, match=r"pip install robustbench_cli\[torchattacks\]"):
        build("torchattacks", trained_mlp, eps=0.1)


def test_kwargs_typed_on_the_command_line_keep_their_types():
    cfg = compose("eval", "attack=torchattacks", "attack.cls=PGD", "attack.kwargs={steps:5,alpha:0.01}")
    assert dict(cfg.attack.kwargs) == {"steps": 5, "alpha": 0.01}


@pytest.mark.slow  # make test-all: keeps make test under 10 minutes
def test_robust_eval_runs_it_end_to_end(trained):
    work, metrics, run_dir = trained
    ckpt = run_dir / metrics["checkpoint"]
    ok(robust("eval", f"ckpt_path={ckpt}", "dataset.limit_test=200", "attack=torchattacks",
              "attack.cls=PGD", "attack.kwargs={steps:5,alpha:0.02}", "eps=[0,0.1]",
              "top5=false", "hydra.run.dir=torchattacks", cwd=work))
    rows = json.loads((work / "torchattacks" / "results.json").read_text())
    by_eps = {row["eps"]: row for row in rows if not row.get("check")}
    # Its sanity check is our PGD: the class does not say whether it iterates.
    assert [row["attack"] for row in rows if row.get("check")] == ["pgd_linf"]
    assert by_eps[0.0]["accuracy"] > 0.6
    assert by_eps[0.1]["accuracy"] < by_eps[0.0]["accuracy"] - 0.2
    assert by_eps[0.1]["attack"] == "torchattacks" and by_eps[0.1]["cls"] == "PGD"
    assert "torchattacks_pgd" in (work / "torchattacks" / "results.md").read_text()
    assert by_eps[0.1]["params"]["kwargs"] == {"steps": 5, "alpha": 0.02}
    assert by_eps[0.1]["gradient_passes"] == 5 * by_eps[0.0]["correct"]  # clean-correct points
