"""`make bench`: our attacks against torchattacks, side by side on the same model and data.

Trains (once, reused from bench_out/) two small CNNs on Fashion-MNIST with `robust train`,
one undefended and one PGD-trained, then times PGD-L-inf and FGSM on 1,000 test images:
ours through the evaluation runner (clean pass, still-correct points only, early stop) and
torchattacks' on every point. Also prints our PGD time over steps x one input-gradient
pass (the cost floor). Targets: accuracy within 1 point of torchattacks'; PGD time at most
0.5x theirs on the undefended model and 1.0x on the adversarially trained one.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import torch
import torchattacks
from rich.console import Console
from rich.table import Table

from robustbench_cli import load_classifier
from robustbench_cli.data import RobustDataModule
from robustbench_cli.evaluation.runner import AttackSpec, evaluate

FASHION = "/usr/share/datasets/fashion-mnist"
OUT = Path("bench_out")
EPS, STEPS, STEP_SIZE, N = 0.1, 10, 0.025, 1000
DATASET = {"name": "fashion_mnist", "root": FASHION, "limit_test": N, "batch_size": 250}


MODELS = {  # name -> extra `robust train` overrides
    "undefended": [],
    "pgd_train": ["defense=pgd_train", f"defense.eps_max={EPS}", "defense.attack_params.steps=5"],
}
TARGET_RATIO = {"undefended": 0.5, "pgd_train": 1.0}


def trained_checkpoint(name: str) -> Path:
    run = OUT / name
    if not (run / "metrics.json").is_file():
        robust = Path(sys.executable).parent / "robust"
        subprocess.run([str(robust), "train", "model=cnn", "dataset=fashion_mnist",
                        f"dataset.root={FASHION}", "dataset.limit_train=10000",
                        "trainer.max_epochs=2", *MODELS[name], f"hydra.run.dir={run}"], check=True)
    return run / json.loads((run / "metrics.json").read_text())["checkpoint"]


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def ours(model, data, name, params) -> tuple[float, float]:
    # top5=false: torchattacks reports top-1 only, and top-5 makes attacks run longer.
    [row], seconds = timed(lambda: evaluate(model, data, [AttackSpec(name, params)], [EPS],
                                            top5="false", batch_size=250, progress=False))
    return row["accuracy"], seconds


def theirs(model, x, y, attack) -> tuple[float, float]:
    def run():
        correct = 0
        for xb, yb in zip(x.split(250), y.split(250)):
            x_adv = attack(xb, yb)
            with torch.no_grad():
                correct += int((model(x_adv).argmax(1) == yb).sum())
        return correct / len(y)

    return timed(run)


def gradient_pass_seconds(model, x, y) -> float:
    """One forward + input-gradient pass over all N points, the unit of attack cost."""
    def run():
        for xb, yb in zip(x.split(250), y.split(250)):
            xb = xb.clone().requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(model(xb), yb, reduction="sum")
            torch.autograd.grad(loss, xb)

    for p in model.parameters():
        p.requires_grad_(False)
    return min(timed(run)[1] for _ in range(3))


def compare(name: str, data, x, y, table: Table) -> str:
    """Adds the model's rows to the table; returns its cost-floor line."""
    model = load_classifier(trained_checkpoint(name))
    timed(lambda: model(x[:250]))  # warm-up
    pgd = ours(model, data, "pgd_linf", {"steps": STEPS, "step_size": STEP_SIZE})
    pgd_ta = theirs(model, x, y, torchattacks.PGD(model, eps=EPS, alpha=STEP_SIZE, steps=STEPS,
                                                  random_start=True))
    fgsm = ours(model, data, "fgsm", {})
    fgsm_ta = theirs(model, x, y, torchattacks.FGSM(model, eps=EPS))
    floor = gradient_pass_seconds(model, x, y)
    for attack, (acc, sec), (acc_ta, sec_ta) in (("pgd_linf", pgd, pgd_ta), ("fgsm", fgsm, fgsm_ta)):
        target = f"<= {TARGET_RATIO[name]}" if attack == "pgd_linf" else ""
        table.add_row(name, attack, f"{100 * acc:.2f}", f"{100 * acc_ta:.2f}",
                      f"{100 * (acc - acc_ta):+.2f}", f"{sec:.2f}", f"{sec_ta:.2f}",
                      f"{sec / sec_ta:.2f}", target)
    return (f"{name}: PGD cost over its floor = {pgd[1]:.2f} s / ({STEPS} x {floor:.3f} s per "
            f"input-gradient pass) = {pgd[1] / (STEPS * floor):.2f}")


def main() -> None:
    torch.manual_seed(0)
    data = RobustDataModule(DATASET, data_dir="data").test_dataset()
    x = torch.stack([data[i][0] for i in range(len(data))])
    y = torch.tensor([data[i][1] for i in range(len(data))])
    table = Table(title=f"Attack speed: CNN on {N} Fashion-MNIST test images, eps={EPS}, "
                        f"PGD {STEPS} steps of {STEP_SIZE}")
    for column in ("model", "attack", "ours acc (%)", "torchattacks acc (%)", "diff (points)",
                   "ours s", "torchattacks s", "time ratio ours/theirs", "target ratio"):
        table.add_column(column, justify="right")
    floors = [compare(name, data, x, y, table) for name in MODELS]
    console = Console(width=150)  # the table is wider than a default non-terminal console
    console.print(table)
    for line in floors:
        console.print(line)


if __name__ == "__main__":
    main()
