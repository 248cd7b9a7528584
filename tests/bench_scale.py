"""`make bench`, part 5: evaluation at scale, side by side in one run.

1. `robust eval trainer=ddp_cpu` (2 CPU processes) against one process: PGD-L-inf (10
   steps) at eps 0.05 and 0.1 on the PGD-trained CNN of bench_attacks.py, 1,000
   Fashion-MNIST test images. Targets: the same table (rows equal but for seconds); time
   below the one-process time on 2 free cores.
2. PGD under trainer.precision=bf16-mixed against float32, same model and images, in one
   process. Target: accuracy within 1 point (bf16 time is the hardware's: fast only with
   bf16 units).
3. The runner's channels-last convolutions against the default layout for the same PGD.
Alone: `python tests/bench_scale.py` (trains the CNN into bench_out/ if it is not there).
"""

import json
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from bench_attacks import FASHION, OUT, timed, trained_checkpoint
from bench_reliable import load_points
from rich.console import Console
from rich.table import Table

from robustbench_cli import load_classifier
from robustbench_cli.evaluation import runner
from robustbench_cli.evaluation.runner import AttackSpec, evaluate

N, EPS = 1000, [0.05, 0.1]
PGD = {"steps": 10, "step_ratio": 0.25}


def cli_eval(ckpt: Path, folder: Path, *extra: str) -> tuple[list[dict], float]:
    robust = Path(sys.executable).parent / "robust"
    start = time.perf_counter()
    subprocess.run([str(robust), "eval", f"ckpt_path={ckpt}", "attack=pgd_linf", "attack.steps=10",
                    f"eps=[{','.join(map(str, EPS))}]", "dataset=fashion_mnist",
                    f"dataset.root={FASHION}", f"dataset.limit_test={N}", "sanity=false",
                    "progress=false", "results.index=false", f"hydra.run.dir={folder}", *extra],
                   check=True, capture_output=True)
    seconds = time.perf_counter() - start
    rows = json.loads((folder / "results.json").read_text())
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows], seconds


def distributed_rows(table: Table) -> None:
    ckpt = trained_checkpoint("pgd_train")
    root = OUT / f"scale_{int(time.time())}"
    one, one_seconds = cli_eval(ckpt, root / "one")
    two, two_seconds = cli_eval(ckpt, root / "two", "trainer=ddp_cpu")
    table.add_row("eval, 2 processes (ddp_cpu) / 1 (whole command)", f"{two_seconds:.1f}",
                  f"{one_seconds:.1f}", f"{two_seconds / one_seconds:.2f}", "< 1",
                  "same table" if one == two else "TABLES DIFFER")


def model_rows(table: Table) -> None:
    model = load_classifier(trained_checkpoint("pgd_train"))
    data, _, _ = load_points(N)

    def run(precision="32"):
        return evaluate(model, data, [AttackSpec("pgd_linf", PGD)], EPS, top5="false",
                        sanity=False, batch_size=250, progress=False, precision=precision)

    full, full_seconds = timed(run)
    bf16, bf16_seconds = timed(lambda: run("bf16-mixed"))
    worst = max(abs(a["accuracy"] - b["accuracy"]) for a, b in zip(full, bf16))
    table.add_row("PGD, bf16-mixed / float32", f"{bf16_seconds:.1f}", f"{full_seconds:.1f}",
                  f"{bf16_seconds / full_seconds:.2f}", "-",
                  f"accuracy within {100 * worst:.2f} points (target 1)")
    layout = runner.channels_last
    runner.channels_last = lambda model: nullcontext()  # the default layout, for comparison
    try:
        plain, plain_seconds = timed(run)
    finally:
        runner.channels_last = layout
    same = [r["accuracy"] for r in plain] == [r["accuracy"] for r in full]
    table.add_row("PGD, channels-last convs / default layout", f"{full_seconds:.1f}",
                  f"{plain_seconds:.1f}", f"{full_seconds / plain_seconds:.2f}", "< 1",
                  "same accuracy" if same else "accuracy differs")


def main() -> None:
    torch.manual_seed(0)
    table = Table(title=f"Evaluation at scale: PGD-L-inf 10 steps, eps {EPS}, PGD-trained CNN, "
                        f"{N} Fashion-MNIST test images, {torch.get_num_threads()} threads")
    for column in ("what", "seconds", "baseline seconds", "time ratio", "target", "result"):
        table.add_column(column, justify="right")
    distributed_rows(table)
    model_rows(table)
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
