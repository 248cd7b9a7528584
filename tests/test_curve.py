"""curve=minimal: the accuracy-vs-eps table from a per-point bisection matches the sweep's."""

import csv
import json

import pytest
import torch
from helpers import ok, robust
from test_attacks import fashion_split, trained_mlp  # noqa: F401 (fixture)
from torch.utils.data import TensorDataset

from robustbench_cli.errors import UserError
from robustbench_cli.evaluation.runner import AttackSpec, evaluate

EPS = [0.0, 0.02, 0.05, 0.08, 0.12, 0.2]


@pytest.fixture(scope="module")
def test_points(fashion_root):
    return TensorDataset(*fashion_split(fashion_root, "t10k", 600))


def run(model, data, curve, eps=EPS, **params):
    return evaluate(model, data, [AttackSpec("pgd_linf", params)], eps, curve=curve,
                    progress=False, top5="false")


def test_minimal_curve_matches_the_sweep_within_a_point(trained_mlp, test_points):  # noqa: F811
    sweep = run(trained_mlp, test_points, "sweep")
    minimal = run(trained_mlp, test_points, "minimal")
    assert [r["eps"] for r in minimal] == [r["eps"] for r in sweep] == EPS
    for s, m in zip(sweep, minimal):
        assert abs(s["accuracy"] - m["accuracy"]) <= 0.01, (s["eps"], s["accuracy"], m["accuracy"])
        assert m["curve"] == "minimal" and m["n"] == s["n"]
    accuracies = [r["accuracy"] for r in minimal]
    assert accuracies == sorted(accuracies, reverse=True)  # bisection is monotone by construction
    assert accuracies[0] > 0.7 and accuracies[-1] < 0.1  # the curve spans the whole range
    # Fewer attack runs than the sweep: ~log2(E + 1) per point instead of E.
    passes = sum(r.get("gradient_passes", 0) for r in minimal)
    assert passes < 0.75 * sum(r.get("gradient_passes", 0) for r in sweep)


def test_minimal_curve_attacks_top1_points_and_never_mixes_with_sweep_rows(trained_mlp, test_points):  # noqa: F811
    spec = [AttackSpec("pgd_linf")]
    top1 = evaluate(trained_mlp, test_points, spec, EPS, curve="minimal", progress=False, top5="false")
    # top5=auto on 10 classes: the bisection still attacks only the clean-correct points.
    auto = evaluate(trained_mlp, test_points, spec, EPS, curve="minimal", progress=False, sanity=False)
    assert [(r["accuracy"], r.get("gradient_passes")) for r in auto] == \
        [(r["accuracy"], r.get("gradient_passes")) for r in top1]
    # Resuming a sweep's folder with curve=minimal recomputes every row as a bisection.
    kept = {}
    evaluate(trained_mlp, test_points, spec, EPS, progress=False, top5="false", sanity=False,
             on_row=lambda f: kept.update({spec[0].key(f.row["eps"]): f}))
    resumed = evaluate(trained_mlp, test_points, spec, EPS, curve="minimal", progress=False,
                       top5="false", sanity=False, finished=kept)
    assert all(r.get("curve") == "minimal" for r in resumed)


def test_minimal_curve_refuses_what_it_cannot_bisect(trained_mlp, test_points):  # noqa: F811
    with pytest.raises(UserError, match="protocol=robust"):
        evaluate(trained_mlp, test_points, [AttackSpec("pgd_linf")], EPS, curve="minimal",
                 protocol="all_points", progress=False)
    with pytest.raises(UserError, match="top-1 only"):
        evaluate(trained_mlp, test_points, [AttackSpec("pgd_linf")], EPS, curve="minimal",
                 top5="true", progress=False)
    with pytest.raises(UserError, match="curve"):
        run(trained_mlp, test_points, "dense")


def test_eval_curve_minimal_writes_the_per_point_minimal_eps(trained):
    work, _, run_dir = trained
    ok(robust("eval", f"ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}", "attack=pgd_linf",
              "eps=[0,0.05,0.1,0.2]", "curve=minimal", "sanity=false", "progress=false",
              "hydra.run.dir=curve_run", cwd=work))
    rows = json.loads((work / "curve_run" / "results.json").read_text())
    assert [r["eps"] for r in rows] == [0, 0.05, 0.1, 0.2]
    with open(work / "curve_run" / "minimal_eps.csv") as handle:
        points = list(csv.DictReader(handle))
    assert len(points) == rows[0]["n"]
    values = [float(p["pgd_linf"]) for p in points]
    # A row's accuracy is the share of points whose minimal fooling eps lies above its eps.
    for row in rows:
        assert sum(v > row["eps"] for v in values) == row["correct"]
    assert torch.isfinite(torch.tensor(values)).any() and torch.isinf(torch.tensor(values)).any()
