"""The AutoAttack ensemble: members run on the points still robust, the worst case over them,
per-member counts in the row; and, slow, its accuracy against torchattacks' AutoAttack."""

import json

import pytest
import torch
from helpers import FASHION, ok, robust
from test_attacks import fashion_test, perturbation_norms, trained_mlp  # noqa: F401 (fixtures)
from torch.utils.data import TensorDataset

from robustbench_cli import load_classifier
from robustbench_cli.attacks import build
from robustbench_cli.data import RobustDataModule
from robustbench_cli.errors import UserError
from robustbench_cli.evaluation.runner import AttackSpec, evaluate

SMALL = {"steps": 20, "queries": 200}  # budgets that keep the tests fast


def robust_points(model, x_adv, y):
    with torch.no_grad():
        return model(x_adv).argmax(1) == y


def test_the_ensemble_is_the_worst_case_over_its_members(trained_mlp, fashion_test):  # noqa: F811
    x, y = fashion_test[0][:300], fashion_test[1][:300]
    attack = build("autoattack", trained_mlp, eps=0.1, version="fast", **SMALL)
    x_adv = attack(x, y)
    assert perturbation_norms(x_adv, x, "linf").max() <= 0.1 + 1e-6 and 0 <= x_adv.min() <= x_adv.max() <= 1
    survived = robust_points(trained_mlp, x_adv, y)
    clean = robust_points(trained_mlp, x, y)
    fooled = {k: v for k, v in attack.stats.items() if k.startswith("fooled_by_")}
    assert list(fooled) == ["fooled_by_apgd_ce", "fooled_by_apgd_t", "fooled_by_square"]
    assert sum(fooled.values()) == int(clean.sum() - survived.sum())  # each fooled point once
    # No member alone does better than the ensemble, nor does PGD.
    for name, params in (("apgd", {"steps": 20}), ("apgd", {"steps": 20, "loss": "dlr", "target_classes": 9}),
                         ("square", {"queries": 200}), ("pgd_linf", {"steps": 20})):
        alone = robust_points(trained_mlp, build(name, trained_mlp, eps=0.1, **params)(x, y), y)
        assert int(survived.sum()) <= int(alone.sum()), name
    # Points are seeded one by one: the same point gives the same result in another batch.
    again = build("autoattack", trained_mlp, eps=0.1, version="fast", **SMALL)
    assert torch.allclose(again(x[100:140], y[100:140], index=torch.arange(100, 140)), x_adv[100:140],
                          atol=1e-5)


def test_the_row_counts_the_points_each_member_fooled_first(trained_mlp, fashion_test):  # noqa: F811
    data = TensorDataset(fashion_test[0][:300], fashion_test[1][:300])
    [row] = evaluate(trained_mlp, data, [AttackSpec("autoattack", {"version": "standard", **SMALL})],
                     [0.1], top5="false", sanity=False, progress=False)
    members = ("apgd_ce", "apgd_t", "fab_t", "square")
    assert [k for k in row if k.startswith("fooled_by_")] == [f"fooled_by_{m}" for m in members]
    assert sum(row[f"fooled_by_{m}"] for m in members) == round(row["clean_accuracy"] * 300) - row["correct"]
    assert row["gradient_passes"] > 0 and row["queries"] > 0


def test_reporting_top5_never_undoes_a_top1_fooling(trained_mlp, fashion_test):  # noqa: F811
    """With top-5, misclassified points go on to the next members (to leave the top 5);
    their top-1 outcome must stay fooled whatever a later member returns."""
    data = TensorDataset(fashion_test[0][:200], fashion_test[1][:200])
    spec = [AttackSpec("autoattack", {"version": "standard", **SMALL})]
    top1 = evaluate(trained_mlp, data, spec, [0.1], top5="false", sanity=False, progress=False)[0]
    both = evaluate(trained_mlp, data, spec, [0.1], top5="true", sanity=False, progress=False)[0]
    assert both["accuracy"] <= top1["accuracy"] and both["top5"] < both["clean_top5"]


@pytest.mark.parametrize("params, message", [
    ({"version": "strong"}, "version"), ({"norm": "l1"}, "norm"), ({"steps": 0}, "steps"),
    ({"target_classes": 0}, "target_classes"),
])
def test_bad_parameters_are_one_line_errors(trained_mlp, params, message):  # noqa: F811
    with pytest.raises(UserError, match=message):
        build("autoattack", trained_mlp, eps=0.1, **params)


@pytest.mark.slow  # make test-all: trains a PGD CNN and runs both full ensembles
def test_accuracy_is_no_higher_than_torchattacks_autoattack(tmp_path):
    import torchattacks

    run = tmp_path / "pgd_cnn"
    ok(robust("train", "model=cnn", "dataset=fashion_mnist", f"dataset.root={FASHION}",
              "dataset.limit_train=5000", "trainer.max_epochs=2", "defense=pgd_train",
              "defense.eps_max=0.1", "defense.attack_params.steps=5", f"hydra.run.dir={run}",
              cwd=tmp_path))
    model = load_classifier(run / json.loads((run / "metrics.json").read_text())["checkpoint"])
    data = RobustDataModule({"name": "fashion_mnist", "root": FASHION, "limit_test": 200},
                            data_dir="data").test_dataset()
    x = torch.stack([data[i][0] for i in range(200)])
    y = torch.tensor([data[i][1] for i in range(200)])
    [ours] = evaluate(model, data, [AttackSpec("autoattack", {})], [0.1], top5="false",
                      sanity=False, progress=False)
    reference = torchattacks.AutoAttack(model, norm="Linf", eps=0.1, version="standard",
                                        n_classes=10, seed=0)
    theirs = robust_points(model, reference(x, y), y).float().mean().item()
    assert 0.1 < theirs < ours["clean_accuracy"]  # a model with something left to attack
    assert ours["accuracy"] <= theirs + 0.01, (ours, theirs)
