"""`robust train` then `robust eval` through the real command, on real Fashion-MNIST."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import FASHION, ok, robust


def test_train_reaches_well_above_chance(trained):
    _, metrics, run_dir = trained
    assert metrics["test_accuracy"] > 0.6  # chance is 0.1
    assert metrics["n_test"] == 500 and metrics["epochs"] == 1
    assert metrics["model"] == "mlp" and metrics["dataset"] == "fashion_mnist"
    assert (run_dir / metrics["checkpoint"]).is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert len(metrics["checkpoint_sha256"]) == 64 and metrics["git_revision"]
    assert metrics["config"]["seed"] == 1


def test_eval_table_starts_at_clean_accuracy_and_never_rises(trained):
    work, metrics, _ = trained
    out = ok(robust("eval", "model=mlp", "dataset=fashion_mnist", "dataset.limit_test=500",
                    "attack=[fgsm,pgd_linf]",
                    "eps=[0,0.1,0.2]", "attack.steps=5", "paths.output_dir=outputs", cwd=work))
    assert "using the newest matching checkpoint" in out.stdout
    [results] = (work / "outputs" / "eval").glob("*/results.json")
    rows = json.loads(results.read_text())
    by = {(r["attack"], r["eps"]): r for r in rows}
    assert {a for a, _ in by} == {"fgsm", "fgsm_pred", "pgd_linf", "worst_case"}
    for attack in ("fgsm", "pgd_linf", "worst_case"):
        accuracies = [by[attack, eps]["accuracy"] for eps in (0.0, 0.1, 0.2)]
        assert accuracies[0] == pytest.approx(metrics["test_accuracy"], abs=1e-6)
        assert accuracies[0] >= accuracies[1] >= accuracies[2]
        assert by[attack, 0.1]["n"] == 500
    assert by["pgd_linf", 0.1]["accuracy"] < by["fgsm", 0.0]["accuracy"] - 0.2
    for eps in (0.1, 0.2):
        worst = by["worst_case", eps]["accuracy"]
        assert all(worst <= by[a, eps]["accuracy"] for a in ("fgsm", "fgsm_pred", "pgd_linf"))
        assert by["fgsm", eps]["top5"] >= by["fgsm", eps]["accuracy"]
    run_dir = results.parent
    with open(run_dir / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    assert "pgd_linf" in (run_dir / "results.md").read_text()
    assert (run_dir / "accuracy_vs_eps.png").stat().st_size > 0
    run_record = json.loads((run_dir / "run.json").read_text())
    assert run_record["checkpoint_sha256"] == rows[0]["checkpoint_sha256"]
    # Protocol, intervals, the sanity check and per-point outcomes readable with numpy alone.
    assert {row["protocol"] for row in rows} == {"robust"} and run_record["protocol"] == "robust"
    assert all(row["ci_low"] <= row["accuracy"] <= row["ci_high"] for row in rows)
    sanity = [row for row in rows if row.get("check") == "sanity"]
    assert [(row["attack"], row["eps"]) for row in sanity] == [("pgd_linf", 1.0)]
    assert run_record["sanity"] == {"checked": True, "failed": []}
    assert "±" in (run_dir / "results.md").read_text()
    with np.load(run_dir / "points.npz") as points:
        assert "clean" in points.files and "pgd_linf@0.1" in points.files
        assert "pgd_linf@1.0#sanity" in points.files
        pgd = points["pgd_linf@0.1"]
        assert pgd.dtype == bool and pgd.sum() == by["pgd_linf", 0.1]["correct"]


def test_multirun_writes_summary_and_aggregate_rebuilds_it(trained):
    work, _, run_dir = trained
    ckpt = run_dir / "checkpoints" / "best.ckpt"
    ok(robust("eval", "-m", f"ckpt_path={ckpt}", "attack=fgsm", "eps=0,0.1",
              "paths.output_dir=swept", cwd=work))
    [sweep] = (work / "swept" / "eval-multirun").iterdir()  # the default sweep folder
    summary = (sweep / "summary.csv").read_text()
    assert "fgsm" in summary and "0.1" in summary
    (sweep / "summary.csv").unlink()
    out = ok(robust("aggregate", sweep, cwd=work))
    assert (sweep / "summary.csv").read_text() == summary
    assert "fgsm" in out.stdout
    assert (sweep / "accuracy_vs_eps.png").is_file()


def test_eval_reads_the_checkpoint_dataset_when_none_is_chosen(trained):
    work, metrics, run_dir = trained
    ckpt = run_dir / metrics["checkpoint"]
    ok(robust("eval", f"ckpt_path={ckpt}", "dataset.limit_test=100", "hydra.run.dir=plain",
              cwd=work))
    [row] = json.loads((work / "plain" / "results.json").read_text())
    assert row["attack"] == "none" and row["n"] == 100 and row["dataset"] == "fashion_mnist"


def test_load_classifier_python_api(trained):
    import torch

    from robustbench_cli import load_classifier

    _, metrics, run_dir = trained
    model = load_classifier(run_dir / metrics["checkpoint"])
    assert not model.training
    logits = model(torch.rand(3, 1, 28, 28))
    assert logits.shape == (3, 10)


@pytest.mark.slow  # make test-all
def test_ddp_cpu_training_from_the_robust_command(tmp_path, fashion_root):
    ok(robust("train", "trainer=ddp_cpu", "dataset=fashion_mnist", f"dataset.root={FASHION}",
              "dataset.limit_train=1000", "dataset.limit_test=200", "trainer.max_epochs=1",
              "hydra.run.dir=ddp", cwd=tmp_path))
    metrics = json.loads(Path(tmp_path / "ddp" / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.5 and metrics["config"]["trainer"]["devices"] == 2


def test_multirun_with_a_failing_job_keeps_the_others(trained):
    work, metrics, run_dir = trained
    ckpt = run_dir / metrics["checkpoint"]
    process = robust("eval", "-m", f"ckpt_path={ckpt}", "dataset.limit_test=100", "attack=fgsm",
                     "eps=0.1,-1", "hydra.sweep.dir=failing", cwd=work)
    assert process.returncode != 0
    assert "eps must be >= 0" in process.stderr and "Traceback" not in process.stderr
    sweep = work / "failing"
    assert json.loads((sweep / "0" / "results.json").read_text())[0]["eps"] == 0.1
    assert "eps must be >= 0" in json.loads((sweep / "1" / "error.json").read_text())["error"]
    summary = (sweep / "summary.md").read_text()
    assert "fgsm" in summary and "eps must be >= 0" in summary
    rows = list(csv.DictReader(open(sweep / "summary.csv")))
    assert any(r.get("status") == "failed" for r in rows)


@pytest.mark.slow  # make test-all
def test_same_seed_and_config_give_the_same_model(tmp_path, fashion_root):
    import torch

    from robustbench_cli import load_classifier

    args = ["train", "dataset=fashion_mnist", f"dataset.root={FASHION}", "dataset.limit_train=1000",
            "dataset.limit_test=300", "trainer.max_epochs=1", "seed=7"]
    runs = []
    for name in ("a", "b"):
        ok(robust(*args, f"hydra.run.dir={name}", cwd=tmp_path))
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        runs.append((metrics["test_accuracy"], load_classifier(tmp_path / name / metrics["checkpoint"])))
    (acc_a, model_a), (acc_b, model_b) = runs
    assert acc_a == acc_b
    for (name, a), b in zip(model_a.state_dict().items(), model_b.state_dict().values()):
        assert torch.equal(a, b), name
    tables = []
    for name in ("a", "b"):
        ok(robust("eval", f"ckpt_path={name}/checkpoints/best.ckpt", "attack=[pgd_linf,gaussian]",
                  "eps=[0.05,0.1]", "seed=7", f"hydra.run.dir={name}/eval", cwd=tmp_path))
        rows = json.loads((tmp_path / name / "eval" / "results.json").read_text())
        tables.append([(r["attack"], r["eps"], r["accuracy"]) for r in rows])
    assert tables[0] == tables[1]
