"""The `logger` group: logger=tensorboard and logger=mlflow each record a train run and an eval
sweep in local stores, read back with the trackers' own readers; the default csv adds nothing.

To keep the fast suite short, one `robust eval` subprocess (tensorboard) drives the command;
the mlflow eval sweep is recorded in-process from that run's files (the same call `robust
eval` makes at its end), and through the command in a slow multirun test."""

import json
import shutil
import subprocess
import sys

import pytest
from helpers import FASHION, compose, ok, robust, train_in_process

TRAIN = ["dataset.limit_train=300", "dataset.limit_test=100", "trainer.max_epochs=1",
         "trainer.log_every_n_steps=1"]
EPS = [0.0, 0.05, 0.1]
TABLES = {"results.json", "results.csv", "results.md", "accuracy_vs_eps.png"}


def eval_args(work, logger: str) -> list[str]:
    """`robust eval` arguments for WORK's trained MLP (logger=LOGGER, store in WORK/outputs)."""
    return [f"logger={logger}", f"ckpt_path={work}/outputs/train/run/checkpoints/best.ckpt",
            "dataset=fashion_mnist", f"dataset.root={FASHION}", "dataset.limit_test=100",
            "attack=fgsm", "progress=false", f"paths.output_dir={work / 'outputs'}"]


@pytest.fixture(scope="module")
def no_mlflow_env():
    """MLflow exports its tracking URI for child processes (MLFLOW_TRACKING_URI): after an
    in-process fit, set it back to empty (= the local default store), as a user's shell has it,
    for the commands run here and for later tests."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", "")
        yield patch


@pytest.fixture(scope="module")
def tensorboard_run(tmp_path_factory, no_mlflow_env):
    """A 1-epoch MLP trained in this process into WORK/outputs/train/run, then `robust eval`
    of it with fgsm (and fgsm_pred) over EPS into WORK/outputs/eval/run, both with
    logger=tensorboard; (WORK, train metrics, eval rows)."""
    work = tmp_path_factory.mktemp("tensorboard")
    metrics = train_in_process(work / "outputs/train/run", "logger=tensorboard",
                               f"paths.output_dir={work / 'outputs'}", *TRAIN)
    ok(robust("eval", *eval_args(work, "tensorboard"), f"eps=[{','.join(map(str, EPS))}]",
              f"hydra.run.dir={work / 'outputs/eval/run'}", cwd=work))
    return work, metrics, json.loads((work / "outputs/eval/run/results.json").read_text())


@pytest.fixture(scope="module")
def mlflow_run(tmp_path_factory, no_mlflow_env, tensorboard_run):
    """The same fit with logger=mlflow, and the tensorboard run's eval sweep (its files copied
    to WORK/outputs/eval/run) sent to MLflow as `robust eval` does; (WORK, metrics, rows)."""
    from robustbench_cli.trackers.results import track_results

    work = tmp_path_factory.mktemp("mlflow")
    outputs = work / "outputs"
    metrics = train_in_process(outputs / "train/run", "logger=mlflow", f"paths.output_dir={outputs}", *TRAIN)
    no_mlflow_env.setenv("MLFLOW_TRACKING_URI", "")
    swept = tensorboard_run[0] / "outputs/eval/run"
    run_dir = outputs / "eval/run"
    run_dir.mkdir(parents=True)
    for path in swept.iterdir():
        if path.is_file():
            shutil.copy(path, run_dir)
    rows = json.loads((run_dir / "results.json").read_text())
    track_results(compose("eval", "logger=mlflow", f"paths.output_dir={outputs}"), run_dir, rows, "eval")
    return work, metrics, rows


def curve_rows(rows):
    """{(metric name, step): value} the eval run must have logged for its accuracy curves."""
    return {(f"accuracy/{row['attack']}", EPS.index(row["eps"])): row["accuracy"]
            for row in rows if not row.get("check")}


def test_tensorboard_records_a_train_run_and_an_eval_sweep(tensorboard_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    work, metrics, rows = tensorboard_run

    def read(folder):
        events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0, "images": 0})
        events.Reload()
        return events

    fit = read(work / "outputs/train/run/tensorboard")
    assert {"train_loss", "val_acc", "test_acc"} <= set(fit.Tags()["scalars"])
    assert fit.Scalars("test_acc")[-1].value == pytest.approx(metrics["test_accuracy"], abs=1e-6)

    swept = read(work / "outputs/eval/run/tensorboard")
    logged = {(tag, event.step): event.value for tag in swept.Tags()["scalars"]
              for event in swept.Scalars(tag)}
    assert {"accuracy/fgsm", "accuracy/fgsm_pred"} <= {tag for tag, _ in curve_rows(rows)}
    for key, value in curve_rows(rows).items():
        assert logged[key] == pytest.approx(value, abs=1e-6), key
    assert [logged["eps", step] for step in range(len(EPS))] == pytest.approx(EPS)
    assert logged["clean_accuracy", 0] == pytest.approx(rows[0]["clean_accuracy"], abs=1e-6)
    assert {"results.md/text_summary", "results.json/text_summary"} <= set(swept.Tags()["tensors"])
    assert swept.Tags()["images"] == ["accuracy_vs_eps.png"]


def test_mlflow_records_a_train_run_and_an_eval_sweep_in_a_local_store(mlflow_run):
    from mlflow.tracking import MlflowClient

    work, metrics, rows = mlflow_run
    client = MlflowClient(f"sqlite:///{work / 'outputs/mlflow.db'}")

    [fit] = client.search_runs([client.get_experiment_by_name("train").experiment_id])
    assert fit.info.run_name == "train/run" and fit.info.status == "FINISHED"
    assert fit.data.metrics["test_acc"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    assert len(client.get_metric_history(fit.info.run_id, "train_loss")) >= 1
    assert fit.data.params["model/name"] == "mlp"

    [swept] = client.search_runs([client.get_experiment_by_name("eval").experiment_id])
    assert swept.info.run_name == "eval/run" and swept.info.status == "FINISHED"
    for (name, step), value in curve_rows(rows).items():
        history = {m.step: m.value for m in client.get_metric_history(swept.info.run_id, name)}
        assert history[step] == pytest.approx(value), (name, step)
    eps = client.get_metric_history(swept.info.run_id, "eps")
    assert [m.value for m in sorted(eps, key=lambda m: m.step)] == pytest.approx(EPS)
    assert swept.data.params["eps"] == "0.0, 0.05, 0.1"
    assert swept.data.tags["robust.run_dir"] == str((work / "outputs/eval/run").resolve())
    artifacts = {a.path for a in client.list_artifacts(swept.info.run_id)}
    assert TABLES <= artifacts
    local = work / "outputs/mlartifacts" / swept.info.run_id / "artifacts/results.json"
    assert json.loads(local.read_text()) == rows


@pytest.mark.slow
def test_mlflow_records_each_job_of_an_eval_multirun(mlflow_run):
    from mlflow.tracking import MlflowClient

    work = mlflow_run[0]
    sweep = work / "outputs/eval-multirun/sweep"
    ok(robust("eval", "-m", *eval_args(work, "mlflow"), "eps=0.05,0.1", f"hydra.sweep.dir={sweep}", cwd=work))
    client = MlflowClient(f"sqlite:///{work / 'outputs/mlflow.db'}")
    experiment = client.get_experiment_by_name("eval").experiment_id
    runs = {run.info.run_name: run for run in client.search_runs([experiment])}
    for job in ("0", "1"):
        rows = json.loads((sweep / job / "results.json").read_text())
        run = runs[f"eval-multirun/sweep/{job}"]
        assert run.data.params["eps"] == str(rows[0]["eps"])
        logged = {f"{'sanity' if row.get('check') else 'accuracy'}/{row['attack']}": row["accuracy"]
                  for row in rows}
        assert {"accuracy/fgsm", "accuracy/fgsm_pred"} <= set(logged)
        assert {name: run.data.metrics[name] for name in logged} == pytest.approx(logged)
        assert {"results.json", "results.csv", "results.md"} <= {
            a.path for a in client.list_artifacts(run.info.run_id)}


def test_metric_steps_share_one_eps_axis_across_attacks():
    from robustbench_cli.trackers.results import metric_steps, run_params

    rows = [{"attack": "fgsm", "eps": 0.0, "accuracy": 0.9, "clean_accuracy": 0.9, "top5": None},
            {"attack": "fgsm", "eps": 0.1, "accuracy": 0.5, "clean_accuracy": 0.9, "top5": None},
            {"attack": "pgd_linf", "eps": 0.05, "accuracy": 0.6, "clean_accuracy": 0.9},
            {"attack": "pgd_linf", "eps": 1.0, "accuracy": 0.0, "check": "sanity"}]
    assert metric_steps(rows) == [
        (0, {"eps": 0.0, "accuracy/fgsm": 0.9, "clean_accuracy": 0.9, "sanity/pgd_linf": 0.0}),
        (1, {"eps": 0.05, "accuracy/pgd_linf": 0.6}),
        (2, {"eps": 0.1, "accuracy/fgsm": 0.5})]
    assert run_params(rows) == {"attacks": "fgsm, pgd_linf", "eps": "0.0, 0.05, 0.1"}


def test_a_missing_tracker_package_names_the_extra(monkeypatch):
    from omegaconf import OmegaConf

    from robustbench_cli.errors import UserError
    from robustbench_cli.trackers import loggers

    monkeypatch.setattr(loggers.importlib.util, "find_spec", lambda name: None)
    for name in ("tensorboard", "mlflow"):
        with pytest.raises(UserError, match=rf"logger={name} needs .*robustbench_cli\[trackers\]"):
            loggers.check_logger(OmegaConf.create({"name": name}))
    assert loggers.check_logger(OmegaConf.create({"name": "csv"})) == "csv"


def test_the_package_imports_no_tracker():
    code = ("import sys, robustbench_cli, robustbench_cli.cli, robustbench_cli.trackers.loggers, "
            "robustbench_cli.trackers.results; "
            "assert not {'mlflow', 'tensorboard', 'tensorboardX'} & set(sys.modules), 'imported a tracker'")
    subprocess.run([sys.executable, "-c", code], check=True)
