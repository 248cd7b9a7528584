"""Running the real `robust` command in tests."""

import subprocess
import sys
from pathlib import Path

ROBUST = str(Path(sys.executable).parent / "robust")
FASHION = "/usr/share/datasets/fashion-mnist"


def robust(*args, cwd, timeout=600, env=None) -> subprocess.CompletedProcess:
    """Run `robust ARGS...` in cwd; returns the finished process (text output)."""
    return subprocess.run([ROBUST, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def robust_many(calls, cwd, workers=2) -> list[subprocess.CompletedProcess]:
    """`robust ARGS...` for each ARGS in `calls`, two at a time (most of a short call is
    Python and torch starting up, which a second core halves); results in call order."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda args: robust(*args, cwd=cwd), calls))


def ok(process: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert process.returncode == 0, f"exit {process.returncode}\n{process.stdout}\n{process.stderr}"
    return process


def compose(config_name: str, *overrides):
    """The config `robust CONFIG_NAME OVERRIDES...` would run, composed in-process."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    with initialize_config_module("robustbench_cli.conf", version_base=None):
        return hydra_compose(config_name, overrides=list(overrides))


def eval_view(ckpt, *overrides, limit_test=200):
    """(target, view): the classifier and what `robust eval ckpt_path=CKPT OVERRIDES` attacks
    (the classifier, or a defense around it), built in-process on `limit_test` images."""
    from robustbench_cli.commands.eval import attack_specs
    from robustbench_cli.defenses.registry import defense
    from robustbench_cli.evaluation.target import load_target

    overrides = [f"ckpt_path={ckpt}", f"dataset.limit_test={limit_test}", *overrides]
    cfg = compose("eval", *overrides)
    specs, _ = attack_specs(cfg, overrides)
    chosen = defense(cfg.defense.name)
    target = load_target(cfg, overrides, chosen.trained_with)
    return target, chosen.eval_view(cfg, target, specs, overrides)


def train_in_process(run_dir, *overrides) -> dict:
    """`robust train` on Fashion-MNIST in this process (faster than a subprocess); its metrics."""
    from robustbench_cli.commands.train import train

    cfg = compose("train", "dataset=fashion_mnist", f"dataset.root={FASHION}", *overrides)
    return train(cfg, run_dir=run_dir)
