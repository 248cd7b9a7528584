"""The evaluation protocols on real Fashion-MNIST: what each counts, label leaking, top-5,
intervals, paired notes and the unbounded-budget sanity check."""

import gzip
import math

import numpy as np
import pytest
import torch
from helpers import train_in_process
from torch import nn
from torch.utils.data import TensorDataset

from robustbench_cli import load_classifier
from robustbench_cli.evaluation.runner import AttackSpec, evaluate
from robustbench_cli.reporting import table_notes
from robustbench_cli.reporting.stats import mcnemar, wilson_interval


def read_idx(path, count):
    with gzip.open(path, "rb") as stream:
        ndim = stream.read(4)[3]
        shape = [int.from_bytes(stream.read(4), "big") for _ in range(ndim)]
        data = np.frombuffer(stream.read(count * math.prod(shape[1:])), dtype=np.uint8)
    return data.reshape(count, *shape[1:])


def fashion(root, split, count):
    x = torch.from_numpy(read_idx(root / f"{split}-images-idx3-ubyte.gz", count).copy()).float() / 255
    y = torch.from_numpy(read_idx(root / f"{split}-labels-idx1-ubyte.gz", count).astype(np.int64))
    return x.unsqueeze(1), y


@pytest.fixture(scope="module")
def test_set(fashion_root):
    return TensorDataset(*fashion(fashion_root, "t10k", 1000))


@pytest.fixture(scope="module")
def mlp(fashion_root):
    """An MLP trained for one epoch on 2,000 images: about 75% accurate, so a quarter of the
    test points are wrong when clean."""
    x, y = fashion(fashion_root, "train", 2000)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for batch in torch.randperm(len(x)).split(50):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
        optimizer.step()
    return model.eval()


def run(model, dataset, specs, eps, **options):
    """Rows and per-point outcomes (keyed by attack name and eps) of one evaluation."""
    outcomes = {}

    def keep(finished):
        outcomes[finished.row["attack"], finished.row["eps"], finished.row.get("check")] = finished

    rows = evaluate(model, dataset, specs, eps, progress=False, on_row=keep, **options)
    return rows, outcomes


def notes_with_outcomes(rows, outcomes) -> list[str]:
    """The notes as `robust eval` writes them, each row paired with its per-point outcomes."""
    paired = [outcomes[row["attack"], row["eps"], row.get("check")] for row in rows]
    return table_notes(rows, [{"correct": f.correct.numpy(), "clean": f.clean.numpy()} for f in paired])


def test_fgsm_and_fgsm_pred_differ_only_on_clean_wrong_points_under_all_points(mlp, test_set):
    specs = [AttackSpec("fgsm", {"label": "true"}), AttackSpec("fgsm_pred", {"label": "pred"})]
    _, outcomes = run(mlp, test_set, specs, [0.05], protocol="all_points")
    true_label, predicted = outcomes["fgsm", 0.05, None], outcomes["fgsm_pred", 0.05, None]
    clean = true_label.clean
    assert 100 < int((~clean).sum()) < 500  # enough clean-wrong points to tell the two apart
    assert torch.equal(true_label.correct[clean], predicted.correct[clean])
    assert not torch.equal(true_label.correct[~clean], predicted.correct[~clean])
    # Attacking the wrong prediction pushes some clean-wrong points back to their true class.
    assert int(predicted.correct[~clean].sum()) > int(true_label.correct[~clean].sum())
    assert true_label.row["protocol"] == "all_points"

    _, robust = run(mlp, test_set, specs, [0.05], protocol="robust")
    assert torch.equal(robust["fgsm", 0.05, None].correct, robust["fgsm_pred", 0.05, None].correct)


def test_all_points_can_exceed_clean_accuracy_and_the_paired_note_sees_it(mlp, test_set):
    rows, outcomes = run(mlp, test_set, [AttackSpec("fgsm_pred", {"label": "pred"})], [0.01],
                         protocol="all_points")
    row = rows[0]
    gained = outcomes["fgsm_pred", 0.01, None].correct & ~outcomes["fgsm_pred", 0.01, None].clean
    assert gained.any()  # some clean-wrong points are right on their adversarial image
    notes = table_notes(rows, [{"correct": outcomes["fgsm_pred", 0.01, None].correct.numpy(),
                                "clean": outcomes["fgsm_pred", 0.01, None].clean.numpy()}])
    if row["accuracy"] > row["clean_accuracy"]:
        assert any("above the clean accuracy" in note for note in notes) or \
            row["accuracy"] - row["clean_accuracy"] < 0.02  # too small to be significant
    else:
        assert not any("above the clean accuracy" in note for note in notes)


def test_top5_under_full_pgd_falls_far_below_clean_top5(mlp, test_set):
    spec = AttackSpec("pgd_linf", {"steps": 20})
    rows, _ = run(mlp, test_set, [spec], [0.2], protocol="robust")
    row = rows[0]
    assert row["clean_top5"] > 0.95
    assert row["top5"] < row["clean_top5"] - 0.3, row
    # Stopping at the first top-1 fooling iterate would leave the true class near the top.
    rows, _ = run(mlp, test_set, [spec], [0.2], protocol="robust", top5="false")
    assert rows[0]["top5"] is None and rows[0]["accuracy"] == pytest.approx(row["accuracy"], abs=0.02)
    rows, _ = run(mlp, test_set, [spec], [0.2], protocol="all_points")
    assert rows[0]["top5"] < rows[0]["clean_top5"] - 0.3


def test_every_accuracy_carries_its_wilson_interval(mlp, test_set):
    rows, _ = run(mlp, test_set, [AttackSpec("fgsm"), AttackSpec("pgd_linf")], [0.03])
    for row in rows:
        assert (row["ci_low"], row["ci_high"]) == wilson_interval(row["correct"], row["n"])
        if row["top5"] is not None:
            assert (row["top5_ci_low"], row["top5_ci_high"]) == wilson_interval(row["top5_correct"], row["n"])
            assert row["top5"] == row["top5_correct"] / row["n"]
        assert row["ci_low"] < row["accuracy"] < row["ci_high"]


class Quantised(nn.Module):
    """A classifier behind an 8-bit input quantisation: its input gradient is zero, so a
    gradient attack cannot move, even with an unbounded budget."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(torch.round(x * 255) / 255)


def test_sanity_check_flags_a_model_whose_accuracy_at_eps_one_stays_up(mlp, test_set):
    specs = [AttackSpec("fgsm"), AttackSpec("pgd_linf", {"random_start": False})]
    rows, _ = run(mlp, test_set, specs, [0.03], sanity=True)
    checks = [row for row in rows if row.get("check") == "sanity"]
    assert [(row["attack"], row["eps"]) for row in checks] == [("pgd_linf", 1.0)]
    assert checks[0]["accuracy"] <= 0.01
    assert not [note for note in table_notes(rows) if note.startswith("sanity")]

    rows, _ = run(Quantised(mlp), test_set, specs, [0.03], sanity=True)
    check = next(row for row in rows if row.get("check") == "sanity")
    assert check["accuracy"] > 0.5  # PGD without a gradient never leaves the clean image
    assert any(note.startswith("sanity check failed: pgd_linf") for note in table_notes(rows))


def test_noise_beating_pgd_on_a_gradient_free_model_fires_the_masking_note(mlp, test_set):
    """Behind a quantiser PGD only has its random start: a random corner of the ball (random
    sign) fools significantly more points, on the same points, than PGD does."""
    specs = [AttackSpec("pgd_linf"), AttackSpec("random_sign")]
    rows, outcomes = run(Quantised(mlp), test_set, specs, [0.3])
    [note] = notes_with_outcomes(rows, outcomes)
    assert note.startswith("random_sign at eps=0.3 is stronger than every white-box attack")
    assert float(note.split("McNemar p=")[1].split(")")[0]) < 0.01
    # The same two attacks on the plain model: PGD is the stronger, and nothing is noted.
    rows, outcomes = run(mlp, test_set, specs, [0.3])
    assert notes_with_outcomes(rows, outcomes) == []


def test_distilled_student_fails_the_sanity_check(tmp_path, fashion_root):
    """Defensive distillation at T = 100 masks gradients (Carlini & Wagner 2016): PGD keeps far
    more than a few percent of the points even at eps 1, which the sanity check flags."""
    metrics = train_in_process(tmp_path, "defense=distillation", "defense.temperature=100",
                               "dataset.limit_train=3000", "dataset.limit_test=500",
                               "trainer.max_epochs=2", "seed=1")
    student = load_classifier(tmp_path / metrics["checkpoint"])
    test = TensorDataset(*fashion(fashion_root, "t10k", 500))
    rows, outcomes = run(student, test, [AttackSpec("pgd_linf")], [0.2], sanity=True)
    check = next(row for row in rows if row.get("check") == "sanity")
    assert check["accuracy"] > 0.05, check
    [note] = [note for note in notes_with_outcomes(rows, outcomes) if note.startswith("sanity")]
    assert note.startswith("sanity check failed: pgd_linf")
    assert float(note.split("binomial p=")[1].split(")")[0]) < 0.01  # masking, significant at 1%

    # APGD's DLR losses are scale-invariant, so the saturated softmax cannot hide the boundary
    # from them (Croce & Hein 2020): significantly stronger than PGD on the same points.
    specs = [AttackSpec("pgd_linf"), AttackSpec("apgd", {"loss": "dlr", "steps": 50})]
    rows, outcomes = run(student, test, specs, [0.2], worst_case=False)
    pgd, dlr = outcomes["pgd_linf", 0.2, None], outcomes["apgd", 0.2, None]
    p, only_pgd_fooled, only_dlr_fooled = mcnemar(dlr.correct.tolist(), pgd.correct.tolist())
    assert p < 0.01 and only_dlr_fooled > only_pgd_fooled, rows
