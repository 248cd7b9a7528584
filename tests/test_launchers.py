"""Sweeps under Hydra's launcher plugins (the `launchers` extra) and quiet batch logs."""

import os

import pytest
import yaml
from helpers import ok, robust, robust_many, train_in_process
from omegaconf import OmegaConf

from robustbench_cli.commands.launchers import PLUGINS

BAR = "it/s"  # the speed column of Lightning's rich progress bar
SWEEP = ["eval", "-m", "attack=fgsm", "eps=0,0.05,0.1,0.2", "dataset.limit_test=200", "sanity=false",
         "progress=false"]


@pytest.mark.slow  # make test-all: worker processes each import torch (~70 s on a busy 2-core host)
def test_joblib_sweep_gives_the_sequential_summary(trained):
    work, metrics, run_dir = trained
    sweep = [*SWEEP, f"ckpt_path={run_dir / metrics['checkpoint']}"]
    sequential, parallel = robust_many([
        [*sweep, "hydra.sweep.dir=sequential"],
        [*sweep, "hydra.sweep.dir=parallel", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    ], cwd=work)
    ok(sequential), ok(parallel)
    assert "Joblib.Parallel(n_jobs=2" in parallel.stdout + parallel.stderr
    assert "deprecated" not in parallel.stderr
    for name in ("summary.csv", "summary.md"):  # built at the end, from every job's folder
        assert (work / "parallel" / name).read_text() == (work / "sequential" / name).read_text()
    summary = (work / "parallel" / "summary.md").read_text()
    assert "4 job(s) succeeded, 0 failed" in summary and "eps=0.2" in summary


def test_submitit_slurm_launcher_composes(tmp_path):
    settings = ["hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=4",
                "hydra.launcher.timeout_min=30", "hydra.launcher.array_parallelism=8"]
    for command in ("eval", "train"):
        process = ok(robust(command, "hydra/launcher=submitit_slurm", *settings, "--cfg", "hydra",
                            cwd=tmp_path))
        launcher = yaml.safe_load(process.stdout)["hydra"]["launcher"]
        assert launcher["_target_"].endswith("submitit_launcher.SlurmLauncher")
        assert (launcher["partition"], launcher["gpus_per_node"], launcher["timeout_min"],
                launcher["array_parallelism"]) == ("gpu", 4, 30, 8)
        assert launcher["cpus_per_task"] == 4 and launcher["tasks_per_node"] == 1  # our defaults
        assert "deprecated" not in process.stderr
    bad = robust("eval", "hydra/launcher=submitit_slurm", "hydra.launcher.gpus_per_node=many",
                 "--cfg", "hydra", cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr  # checked against the plugin's schema


@pytest.mark.parametrize("name", PLUGINS)
def test_shipped_launcher_configs_restate_the_plugin_settings(name):
    """Our conf/hydra/launcher/NAME.yaml replaces the plugin's config: it must have its keys."""
    from importlib import resources

    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins

    Plugins.instance()  # imports the plugins, which register their configs
    theirs = ConfigStore.instance().load(f"hydra/launcher/{name}.yaml").node
    ours = OmegaConf.load(resources.files("robustbench_cli.conf") / "hydra" / "launcher" / f"{name}.yaml")
    assert set(ours) == set(theirs) and ours._target_ == theirs._target_


def test_a_launcher_without_its_plugin_is_a_one_line_error(tmp_path):
    hidden = tmp_path / "no_plugins"
    (hidden / "hydra_plugins").mkdir(parents=True)
    (hidden / "hydra_plugins" / "__init__.py").write_text("")  # shadows the installed plugins
    path = filter(None, [str(hidden), os.environ.get("PYTHONPATH")])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    process = robust("eval", "-m", "hydra/launcher=joblib", "eps=0,0.1", cwd=tmp_path, env=env)
    assert process.returncode == 2 and "Traceback" not in process.stderr
    assert process.stderr.strip() == ("robust eval: error: hydra/launcher=joblib needs the launchers "
                                      "extra: pip install 'robustbench_cli[launchers]'")


TINY = ["dataset.limit_train=300", "dataset.limit_test=100", "trainer.max_epochs=1",
        "dataset.val_fraction=0"]


def test_train_progress_false_is_quiet(tmp_path, capfd, fashion_root):
    train_in_process(tmp_path / "shown", *TINY)
    assert BAR in "".join(capfd.readouterr())  # the bar a batch log would get by default
    for n, quiet in enumerate(["progress=false", "+trainer.enable_progress_bar=false"]):  # the latter crashed
        metrics = train_in_process(tmp_path / f"quiet{n}", *TINY, quiet)
        assert metrics["test_accuracy"] > 0.3
        out = "".join(capfd.readouterr())
        assert BAR not in out and "clean test accuracy" in out
