"""`make bench`, part 4: a sweep under hydra/launcher=joblib against the same sweep one job
after the other (Hydra's basic launcher), side by side in one run.

`robust eval -m` of PGD-L-inf at 4 eps values (4 jobs) on the undefended CNN of
bench_attacks.py and 1,000 Fashion-MNIST test images, sequential, then with joblib's
n_jobs=2 (each job's torch gets half the cores). Targets: the same summary.csv; joblib's
time at most 0.75x the sequential one on a host with 2 free cores or more.
Alone: `python tests/bench_sweep.py` (trains the CNN into bench_out/ if it is not there).
"""

import os
import subprocess
import sys
import time
from pathlib import Path

from bench_attacks import FASHION, OUT, trained_checkpoint
from rich.console import Console
from rich.table import Table

EPS = "0.02,0.05,0.1,0.2"
N, JOBS, TARGET = 1000, 2, 0.75


def sweep(ckpt: Path, folder: Path, *launcher: str) -> float:
    """Seconds of one `robust eval -m` over the eps values into `folder`."""
    robust = Path(sys.executable).parent / "robust"
    start = time.perf_counter()
    subprocess.run([str(robust), "eval", "-m", f"ckpt_path={ckpt}", "attack=pgd_linf", f"eps={EPS}",
                    "dataset=fashion_mnist", f"dataset.root={FASHION}", f"dataset.limit_test={N}",
                    "sanity=false", "progress=false", f"hydra.sweep.dir={folder}", *launcher],
                   check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    ckpt = trained_checkpoint("undefended")
    root = OUT / f"sweep_{int(time.time())}"
    sequential = sweep(ckpt, root / "sequential")
    parallel = sweep(ckpt, root / "joblib", "hydra/launcher=joblib", f"hydra.launcher.n_jobs={JOBS}")
    same = (root / "joblib" / "summary.csv").read_text() == (root / "sequential" / "summary.csv").read_text()
    table = Table(title=f"joblib sweep of 4 jobs vs sequential: robust eval -m attack=pgd_linf eps={EPS}, "
                        f"CNN, {N} Fashion-MNIST test images, {os.cpu_count()} cores")
    for column in ("launcher", "jobs at once", "seconds", "time ratio joblib/sequential",
                   "target ratio", "same summary"):
        table.add_column(column, justify="right")
    table.add_row("basic (sequential)", "1", f"{sequential:.1f}", "", "", "")
    table.add_row("joblib", str(JOBS), f"{parallel:.1f}", f"{parallel / sequential:.2f}",
                  f"<= {TARGET}", "yes" if same else "NO")
    Console(width=150).print(table)
    print(f"sweep folders: {root}")


if __name__ == "__main__":
    main()
