"""`make bench`, part 2: reliable evaluation against its references, side by side in one run.

1. AutoAttack: our `autoattack` (standard, L-inf) against torchattacks' `AutoAttack`
   (standard, L-inf) on the PGD-trained Fashion-MNIST CNN of bench_attacks.py, the same
   test images, eps 0.1. Theirs runs APGD, APGD-T and FAB-T for 10 steps; ours runs at that
   budget and at the paper's 100. Targets: our accuracy within 1 point of theirs or lower;
   our time at their budget at most 0.5x theirs. Below the table, each run's model work
   (images through a gradient pass, images through a forward-only query) and its floor: that
   work at the model's own cost per image, the time no implementation doing that work can
   beat.
2. APGD-CE against PGD on both CNNs of bench_attacks.py: APGD must not be significantly
   weaker (McNemar, 1%).
3. Whole curves: `curve=minimal` (a per-point bisection over the eps list) against the
   row-by-row sweep of the same PGD, for E = 4 and 8 eps values on both CNNs. Targets: every
   eps within 1 point of the sweep; cheaper than the sweep for E >= 4.
"""

import sys
from contextlib import contextmanager

import torch
import torchattacks
from bench_attacks import DATASET, theirs, timed, trained_checkpoint
from rich.console import Console
from rich.table import Table

from robustbench_cli import load_classifier
from robustbench_cli.data import RobustDataModule
from robustbench_cli.evaluation.runner import AttackSpec, evaluate
from robustbench_cli.models.layout import channels_last
from robustbench_cli.reporting.stats import mcnemar

EPS = 0.1
AUTOATTACK_N = 500
CURVE_EPS = {4: [0.02, 0.05, 0.1, 0.2], 8: [0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2]}
PGD = {"steps": 10, "step_ratio": 0.25}


def load_points(count: int):
    data = RobustDataModule({**DATASET, "limit_test": count}, data_dir="data").test_dataset()
    x = torch.stack([data[i][0] for i in range(len(data))])
    y = torch.tensor([data[i][1] for i in range(len(data))])
    return data, x, y


@contextmanager
def counted(model):
    """Counts the images `model` sees while the block runs: {"gradient_passes", "queries"}
    (forwards that will be differentiated, and forward-only ones)."""
    work = {"gradient_passes": 0, "queries": 0}

    def count(module, args, output):
        differentiated = args[0].requires_grad and torch.is_grad_enabled()
        work["gradient_passes" if differentiated else "queries"] += len(args[0])

    hook = model.register_forward_hook(count)
    try:
        yield work
    finally:
        hook.remove()


def per_image_seconds(model, x, y, batch: int) -> tuple[float, float]:
    """The model's own cost per image at `batch` images a call, in the channels-last layout
    our attacks run in (the faster one here): (forward only, forward + input gradient);
    best of 3 passes over x."""
    def forward():
        with torch.no_grad():
            for xb in x.split(batch):
                model(xb)

    def gradient():
        for xb, yb in zip(x.split(batch), y.split(batch)):
            xb = xb.clone().requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(model(xb), yb, reduction="sum")
            torch.autograd.grad(loss, xb)

    with channels_last(model):
        return tuple(min(timed(run)[1] for _ in range(3)) / len(x) for run in (forward, gradient))


def autoattack_rows(table: Table) -> list[str]:
    """torchattacks' standard AutoAttack runs APGD, APGD-T and FAB-T with 10 steps (its
    defaults), not the paper's 100: ours runs at that budget (the like-for-like time) and at
    the paper's. Returns each run's work-and-floor line."""
    model = load_classifier(trained_checkpoint("pgd_train"))
    data, x, y = load_points(AUTOATTACK_N)
    reference = torchattacks.AutoAttack(model, norm="Linf", eps=EPS, version="standard",
                                        n_classes=10, seed=0)
    with counted(model) as their_work:
        accuracy, their_seconds = theirs(model, x, y, reference)
    # Square, most of the work on a robust model, queries the points still robust of a
    # 250-image batch: about half of it here.
    forward, gradient = per_image_seconds(model, x, y, batch=125)

    def work_line(who: str, work: dict, seconds: float) -> str:
        floor = work["gradient_passes"] * gradient + work["queries"] * forward
        return (f"{who}: {work['gradient_passes']:,} images through gradient passes, "
                f"{work['queries']:,} through queries; floor {floor:.1f} s "
                f"(= {floor / their_seconds:.2f}x torchattacks' time), took {seconds:.1f} s "
                f"({seconds / floor:.2f}x its floor)")

    lines = [f"model cost per image at 125 a call, channels-last: forward {1e6 * forward:.1f} us,"
             f" forward + input gradient {1e6 * gradient:.1f} us",
             work_line("torchattacks", their_work, their_seconds)]
    for steps, budget in ((10, "torchattacks' budget"), (100, "the paper's budget")):
        with counted(model) as our_work:
            [ours], seconds = timed(lambda steps=steps: evaluate(
                model, data, [AttackSpec("autoattack", {"steps": steps})], [EPS], top5="false",
                sanity=False, batch_size=250, progress=False))
        fooled = ", ".join(f"{k[len('fooled_by_'):]} {v}" for k, v in ours.items()
                           if k.startswith("fooled_by_"))
        table.add_row(f"standard, ours at {steps} steps ({budget})",
                      f"{100 * ours['accuracy']:.2f}", f"{100 * accuracy:.2f}",
                      f"{100 * (ours['accuracy'] - accuracy):+.2f}", f"{seconds:.1f}",
                      f"{their_seconds:.1f}", f"{seconds / their_seconds:.2f}",
                      "<= 0.5" if steps == 10 else "-", fooled)
        lines.append(work_line(f"ours at {steps} steps", our_work, seconds))
    return lines


def apgd_rows(table: Table) -> None:
    """APGD-CE (100 steps, its default) against PGD (10 steps) on the same points: is APGD
    ever significantly weaker (McNemar, 1%)?"""
    data, _, _ = load_points(1000)
    for name in ("undefended", "pgd_train"):
        model = load_classifier(trained_checkpoint(name))
        outcomes = {}

        def keep(finished, outcomes=outcomes):
            outcomes[finished.row["attack"]] = finished

        specs = [AttackSpec("pgd_linf", PGD), AttackSpec("apgd", {})]
        rows = evaluate(model, data, specs, [EPS], top5="false", sanity=False, batch_size=250,
                        progress=False, worst_case=False, on_row=keep)
        p, only_apgd_survived, only_pgd_survived = mcnemar(outcomes["apgd"].correct.tolist(),
                                                          outcomes["pgd_linf"].correct.tolist())
        by = {row["attack"]: row for row in rows}
        table.add_row(name, f"{100 * by['pgd_linf']['accuracy']:.2f}",
                      f"{100 * by['apgd']['accuracy']:.2f}", str(only_pgd_survived),
                      str(only_apgd_survived), f"{p:.2g}",
                      "yes" if p < 0.01 and only_apgd_survived > only_pgd_survived else "no")


def curve_rows(table: Table) -> None:
    data, _, _ = load_points(1000)
    for name in ("undefended", "pgd_train"):
        model = load_classifier(trained_checkpoint(name))
        for count, eps_list in CURVE_EPS.items():
            def run(curve, model=model, eps_list=eps_list):
                return evaluate(model, data, [AttackSpec("pgd_linf", PGD)], eps_list, curve=curve,
                                top5="false", sanity=False, batch_size=250, progress=False)

            sweep, sweep_seconds = timed(lambda: run("sweep"))
            minimal, seconds = timed(lambda: run("minimal"))
            worst = max(abs(a["accuracy"] - b["accuracy"]) for a, b in zip(sweep, minimal))
            table.add_row(f"{name}, E = {count}", f"{100 * worst:.2f}", f"{seconds:.1f}",
                          f"{sweep_seconds:.1f}", f"{seconds / sweep_seconds:.2f}")


def autoattack_part(console: Console) -> None:
    aa = Table(title=f"AutoAttack (standard, L-inf, eps {EPS}) on the PGD-trained CNN, "
                     f"{AUTOATTACK_N} Fashion-MNIST test images: ours vs torchattacks")
    for column in ("autoattack", "ours acc (%)", "torchattacks acc (%)", "diff (points)", "ours s",
                   "torchattacks s", "time ratio", "target", "points fooled first by"):
        aa.add_column(column, justify="right")
    work = autoattack_rows(aa)
    console.print(aa)
    for line in work:
        console.print(line)


def apgd_part(console: Console) -> None:
    apgd = Table(title=f"APGD-CE (100 steps) vs PGD-L-inf (10 steps of eps/4), eps {EPS}, "
                       "1,000 Fashion-MNIST test images")
    for column in ("model", "PGD acc (%)", "APGD-CE acc (%)", "fooled by APGD only",
                   "fooled by PGD only", "McNemar p", "APGD significantly weaker?"):
        apgd.add_column(column, justify="right")
    apgd_rows(apgd)
    console.print(apgd)


def curve_part(console: Console) -> None:
    curve = Table(title="curve=minimal vs the row-by-row sweep: PGD-L-inf 10 steps, 1,000 "
                        "Fashion-MNIST test images")
    for column in ("model, eps values", "largest |diff| (points)", "minimal s", "sweep s",
                   "time ratio (target < 1)"):
        curve.add_column(column, justify="right")
    curve_rows(curve)
    console.print(curve)


PARTS = {"autoattack": autoattack_part, "apgd": apgd_part, "curve": curve_part}


def main() -> None:
    """`python tests/bench_reliable.py [autoattack] [apgd] [curve]`: the parts named, or all."""
    unknown = [name for name in sys.argv[1:] if name not in PARTS]
    if unknown:
        sys.exit(f"unknown part {unknown[0]!r}; choose from {', '.join(PARTS)}")
    console = Console(width=170)
    for name in sys.argv[1:] or PARTS:
        PARTS[name](console)


if __name__ == "__main__":
    main()
