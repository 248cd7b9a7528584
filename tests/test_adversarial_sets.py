"""Adversarial sets on disk: `save_adversarial` writes them, `attack=saved` evaluates them."""

import json

import pytest
import torch
from helpers import FASHION, eval_view, ok, robust_many
from safetensors.torch import load_file
from test_attacks import trained_mlp  # noqa: F401

from robustbench_cli.attacks import build
from robustbench_cli.errors import UserError
from robustbench_cli.evaluation.runner import AttackSpec, evaluate

EPS = 0.1
DATA = ["dataset=fashion_mnist", f"dataset.root={FASHION}"]


@pytest.fixture(scope="module")
def saved(trained, tmp_path_factory):
    """One eval run that saves its PGD set whole, one that saves it per class."""
    _, metrics, run = trained
    ckpt = run / metrics["checkpoint"]
    work = tmp_path_factory.mktemp("sets")
    args = ["eval", f"ckpt_path={ckpt}", *DATA, "dataset.limit_test=300", "attack=pgd_linf",
            "attack.steps=5", f"eps={EPS}", "sanity=false", "progress=false", "results.index=false"]
    for process in robust_many([[*args, "save_adversarial=true", f"hydra.run.dir={work / 'whole'}"],
                                [*args, "save_adversarial=per_class",
                                 f"hydra.run.dir={work / 'per_class'}"]], cwd=work):
        ok(process)
    return ckpt, work


def _row(run_dir):
    [row] = json.loads((run_dir / "results.json").read_text())
    return row


def test_a_saved_set_reproduces_its_row_and_transfers(saved, trained_mlp):  # noqa: F811
    ckpt, work = saved
    path = work / "whole" / "adversarial" / f"pgd_linf_eps{EPS}.safetensors"
    assert (work / "whole" / f"examples_pgd_linf_eps{EPS}.png").stat().st_size > 0
    tensors = load_file(path)
    row = _row(work / "whole")
    assert len(tensors["images"]) == 300
    assert int(tensors["attacked"].sum()) == round(row["clean_top5"] * 300)  # top-5 reported

    target, view = eval_view(ckpt, *DATA, limit_test=300)
    spec = AttackSpec("saved", {"path": str(path)})
    [again] = evaluate(view.model, target.test_set, [spec], [EPS], top5="false", progress=False)
    assert (again["correct"], again["n"]) == (row["correct"], row["n"])  # the row, exactly

    # On another model, the transfer row: that model's clean-correct points, shown the set.
    [transfer] = evaluate(trained_mlp, target.test_set, [spec], [EPS], top5="false", progress=False)
    clean = torch.stack([target.test_set[i][0] for i in range(300)])
    with torch.no_grad():
        clean_correct = trained_mlp(clean).argmax(1) == tensors["labels"]
        shown = torch.where(clean_correct[:, None, None, None], tensors["images"], clean)
        expected = (trained_mlp(shown).argmax(1) == tensors["labels"]) & clean_correct
    assert transfer["correct"] == int(expected.sum()) < int(clean_correct.sum())


def test_per_class_sets_split_the_whole_set(saved):
    _, work = saved
    whole = load_file(work / "whole" / "adversarial" / f"pgd_linf_eps{EPS}.safetensors")
    parts = [load_file(p) for p in sorted((work / "per_class" / "adversarial").glob("*_class*.safetensors"))]
    assert len(parts) == 10
    for part in parts:
        assert len(part["labels"].unique()) == 1
        assert torch.equal(part["images"], whole["images"][part["index"]])
    assert sorted(torch.cat([p["index"] for p in parts]).tolist()) == list(range(300))


def test_saved_attack_refuses_what_does_not_fit(saved, trained_mlp):  # noqa: F811
    _, work = saved
    path = work / "whole" / "adversarial" / f"pgd_linf_eps{EPS}.safetensors"
    with pytest.raises(UserError, match=r"crafted at eps 0.1: evaluate it with eps=0.1"):
        build("saved", trained_mlp, eps=0.05, path=path)
    with pytest.raises(UserError, match="adversarial set not found"):
        build("saved", trained_mlp, eps=EPS, path=work / "nowhere.safetensors")
    attack = build("saved", trained_mlp, eps=EPS, path=path)
    x = torch.rand(2, 1, 28, 28)
    with pytest.raises(UserError, match="farther than eps 0.1 from this run's point"):
        attack(x, torch.zeros(2, dtype=torch.long), index=torch.tensor([0, 1]))
    with pytest.raises(UserError, match="holds no image of point 300"):
        attack(x, torch.zeros(2, dtype=torch.long), index=torch.tensor([299, 300]))
