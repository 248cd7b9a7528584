"""`robust transfer` on real Fashion-MNIST: two MLPs trained with different seeds, FGSM crafted
on each, classified by both; the matrices checked against a computation by hand."""

import csv
import json
import re

import pytest
import torch
from helpers import FASHION, compose, ok, robust_many, train_in_process

from robustbench_cli import attacks
from robustbench_cli.checkpoints import load_classifier
from robustbench_cli.data import RobustDataModule
from robustbench_cli.errors import UserError
from robustbench_cli.evaluation.runner import AttackSpec, evaluate
from robustbench_cli.evaluation.transfer_models import load_transfer_inputs, short_labels

EPS = 0.1
N = 200
DATA = ["dataset=fashion_mnist", f"dataset.root={FASHION}", f"dataset.limit_test={N}"]


@pytest.fixture(scope="module")
def checkpoints(trained, tmp_path_factory):
    """A: the session's MLP (seed 1); B: a second MLP, another seed and training subset."""
    _, metrics, run_dir = trained
    b_dir = tmp_path_factory.mktemp("models") / "B"
    b = train_in_process(b_dir, "dataset.limit_train=2000", f"dataset.limit_test={N}",
                         "trainer.max_epochs=1", "seed=2")
    return run_dir / metrics["checkpoint"], b_dir / b["checkpoint"]


@pytest.fixture(scope="module")
def calls(checkpoints, tmp_path_factory):
    """The transfer run and two bad-input calls, two at a time (the other refusals are the
    same UserError path: they are checked in process below)."""
    a, b = checkpoints
    work = tmp_path_factory.mktemp("transfer")
    both = f"[{a},{b}]"
    cases = {
        "run": [f"sources={both}", f"targets={both}", "attack=fgsm", f"eps=[{EPS}]", *DATA,
                "progress=false", "hydra.run.dir=run"],
        "empty sources": ["sources=[]", f"targets=[{a}]", *DATA],
        "attack none": [f"sources=[{a}]", f"targets=[{a}]", "attack=none", *DATA],
    }
    done = robust_many([["transfer", *args] for args in cases.values()], cwd=work)
    return work / "run", dict(zip(cases, done))


@pytest.fixture(scope="module")
def run(calls):
    run_dir, done = calls
    ok(done["run"])
    return run_dir, json.loads((run_dir / "results.json").read_text())


def test_writes_the_matrices_the_table_and_the_heatmap(run):
    run_dir, rows = run
    for name in ("transfer_rate.csv", "transfer_rate.md", "error_rate.csv", "error_rate.md",
                 "results.json", "run.json", "transfer.png"):
        assert (run_dir / name).stat().st_size > 0, name
    assert len(rows) == 4 and {row["n"] for row in rows} == {N}
    labels = list(dict.fromkeys(row["source"] for row in rows))
    assert labels[1] == "B" and labels[0] != "B"  # run folder names
    with open(run_dir / "transfer_rate.csv", newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == ["attack", "eps", "source", *labels]
    assert [line[:3] for line in table[1:]] == [["fgsm", str(EPS), label] for label in labels]
    for stem in ("transfer_rate", "error_rate"):
        assert f"## fgsm, eps={EPS}" in (run_dir / f"{stem}.md").read_text()
    record = json.loads((run_dir / "run.json").read_text())
    assert [s["label"] for s in record["sources"]] == labels and record["n"] == N


def test_the_results_index_leaves_transfer_rows_out(run, tmp_path):
    from robustbench_cli.results.index import ingest

    assert ingest(tmp_path / "results.sqlite", [run[0]]) == 0


def test_rates_equal_a_computation_by_hand(run):
    """The transfer rate counts, among the points the source gets right clean and wrong
    adversarially, those the target gets wrong; the error rate all points the target gets wrong."""
    _, rows = run
    test_set = RobustDataModule({"name": "fashion_mnist", "root": FASHION, "limit_test": N},
                                data_dir="data").test_dataset()
    x = torch.stack([test_set[i][0] for i in range(N)])
    y = torch.tensor([test_set[i][1] for i in range(N)])
    paths = {row["source"]: row["source_checkpoint"] for row in rows}
    models = {label: load_classifier(path) for label, path in paths.items()}
    with torch.no_grad():
        clean_right = {label: model(x).argmax(1) == y for label, model in models.items()}
    for row in rows:
        source, target = models[row["source"]], models[row["target"]]
        x_adv = attacks.build("fgsm", source, eps=EPS, label=True)(x, y, index=torch.arange(N))
        with torch.no_grad():
            source_wrong = source(x_adv).argmax(1) != y
            target_wrong = target(x_adv).argmax(1) != y
        fooled = clean_right[row["source"]] & source_wrong
        assert row["transfer_n"] == int(fooled.sum()) > 0
        assert row["transfer_rate"] == int((fooled & target_wrong).sum()) / int(fooled.sum())
        assert row["error_rate"] == int(target_wrong.sum()) / N
        assert row["source_clean_accuracy"] == int(clean_right[row["source"]].sum()) / N
        assert row["transfer_ci_low"] <= row["transfer_rate"] <= row["transfer_ci_high"]
    off_diagonal = [row["transfer_rate"] for row in rows if row["source"] != row["target"]]
    assert all(rate < 1 for rate in off_diagonal)  # two seeds: not every example transfers


def test_the_diagonal_is_the_white_box_case(run):
    """Every image that fools the source fools it; its error rate is `robust eval`'s under
    the all_points protocol (every point attacked, Kurakin et al.)."""
    _, rows = run
    test_set = RobustDataModule({"name": "fashion_mnist", "root": FASHION, "limit_test": N},
                                data_dir="data").test_dataset()
    for row in (r for r in rows if r["source"] == r["target"]):
        assert row["transfer_rate"] == 1.0 and row["transferred"] == row["transfer_n"]
        [eval_row] = evaluate(load_classifier(row["source_checkpoint"]), test_set,
                              [AttackSpec("fgsm", {"label": True})], [EPS], protocol="all_points",
                              progress=False)
        assert row["error_rate"] == pytest.approx(1 - eval_row["accuracy"])


@pytest.mark.parametrize("case, words", [("empty sources", "sources is empty"),
                                         ("attack none", "attack=none")])
def test_bad_input_exits_2_with_one_line(calls, case, words):
    done = calls[1][case]
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and words in done.stderr, done.stderr


def test_refuses_checkpoints_that_are_missing_not_ours_or_do_not_fit(checkpoints, tmp_path):
    a, _ = checkpoints
    torch.save({"weights": torch.zeros(3)}, tmp_path / "plain.pt")  # a tensor file, not ours
    cases = {"checkpoint not found": (DATA, tmp_path / "nowhere.ckpt"),
             "is not a `robust train` checkpoint": (DATA, tmp_path / "plain.pt"),
             "was trained with channels=1": (["dataset=cifar10", f"dataset.root={tmp_path}"], a)}
    for words, (overrides, path) in cases.items():
        with pytest.raises(UserError, match=re.escape(words)):
            load_transfer_inputs(compose("transfer", *overrides), overrides, [a], [path])


def test_without_dataset_the_checkpoints_must_share_theirs(checkpoints, tmp_path):
    """No dataset= means the checkpoints' own data, which is a guess when they differ."""
    a, _ = checkpoints
    content = torch.load(a, map_location="cpu", weights_only=True)
    content["robust"]["dataset"]["name"] = "mnist"
    other = tmp_path / "mnist.ckpt"
    torch.save(content, other)
    with pytest.raises(UserError, match="trained on different datasets"):
        load_transfer_inputs(compose("transfer"), [], [a], [other])
    inputs = load_transfer_inputs(compose("transfer", *DATA), DATA, [a, other], [a])
    assert inputs.sources[0] is inputs.targets[0]  # one model: the diagonal is white box
    assert len(inputs.test_set) == N


def test_labels_are_run_folders_made_distinct(tmp_path):
    paths = [tmp_path / "x" / "A" / "checkpoints" / "best.ckpt",
             tmp_path / "y" / "A" / "checkpoints" / "best.ckpt",
             tmp_path / "sweep" / "3" / "checkpoints" / "last.ckpt", tmp_path / "model.ckpt",
             tmp_path / "studies" / "q" / "teacher-0123456789ab" / "checkpoints" / "best.ckpt"]
    assert short_labels(paths) == ["A", "A-2", "sweep/3", "model", "teacher"]
