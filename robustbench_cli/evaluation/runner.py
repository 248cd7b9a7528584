"""The attack x eps sweep: one pass over the data, clean predictions computed once.

Protocol (DESIGN.md): robust accuracy is over all n points; a point misclassified when
clean counts as a failure and is never attacked; the worst case over several attacks
counts a point as robust only if it survives every one of them.
"""

import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader

from robustbench_cli import attacks

WORST_CASE = "worst_case"


@dataclass
class AttackSpec:
    name: str
    params: dict = field(default_factory=dict)  # everything but eps


@dataclass
class _Tally:
    correct: int = 0
    top5: int = 0
    seconds: float = 0.0
    stats: dict = field(default_factory=lambda: defaultdict(float))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _top5_hits(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    k = min(5, logits.shape[1])
    return (logits.topk(k, dim=1).indices == y[:, None]).any(dim=1)


def evaluate(model: torch.nn.Module, dataset, specs: list[AttackSpec], eps_list: list[float], *,
             batch_size: int = 256, num_workers: int = 0, device: str = "auto",
             progress: bool = True, worst_case: bool | None = None) -> list[dict]:
    """Accuracy of `model` on `dataset` under each attack at each eps: a list of result rows,
    plus a worst-case row per eps (by default when there are several attacks)."""
    worst_case = len(specs) > 1 if worst_case is None else worst_case
    device = resolve_device(device)
    was_training = model.training
    model.eval().to(device)
    attackers = {(s.name, eps): attacks.build(s.name, model, eps=eps, **s.params)
                 for s in specs for eps in eps_list}
    tallies = defaultdict(_Tally)
    clean, n = _Tally(), 0
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    try:
        with _progress(progress, len(loader)) as advance:
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                with torch.inference_mode():
                    logits = model(x)
                correct, clean_top5 = logits.argmax(1) == y, _top5_hits(logits, y)
                n += len(y)
                clean.correct += int(correct.sum())
                clean.top5 += int(clean_top5.sum())
                for eps in eps_list:
                    survived_all = correct.clone()
                    for spec in specs:
                        robust = _attack_batch(attackers[spec.name, eps], model, x, y, correct,
                                               clean_top5, tallies[spec.name, eps])
                        survived_all &= robust
                    tallies[WORST_CASE, eps].correct += int(survived_all.sum())
                advance()
    finally:
        model.train(was_training)
    return _rows(specs, eps_list, tallies, clean, n, logits.shape[1], worst_case)


def _attack_batch(attack, model, x, y, correct, clean_top5, tally: _Tally) -> torch.Tensor:
    """Attack the still-correct points of a batch; returns which points stay correct."""
    robust, top5 = correct.clone(), clean_top5.clone()
    idx = correct.nonzero().squeeze(1)
    if attack.eps > 0 and len(idx) and attack.name != "none":
        start = time.perf_counter()
        x_adv = attack(x[idx], y[idx])
        with torch.inference_mode():
            adv_logits = model(x_adv)
        robust[idx] = adv_logits.argmax(1) == y[idx]
        top5[idx] = _top5_hits(adv_logits, y[idx])
        tally.seconds += time.perf_counter() - start
        for key, value in getattr(attack, "stats", {}).items():
            tally.stats[key] += value
    tally.correct += int(robust.sum())
    tally.top5 += int(top5.sum())
    return robust


def _rows(specs, eps_list, tallies, clean: _Tally, n: int, num_classes: int,
          worst_case: bool) -> list[dict]:
    with_top5 = num_classes > 5
    names = [s.name for s in specs] + ([WORST_CASE] if worst_case else [])
    params = {s.name: s.params for s in specs}
    rows = []
    for name in names:
        for eps in eps_list:
            tally = tallies[name, eps]
            row = {
                "attack": name, "eps": eps,
                "accuracy": tally.correct / n,
                "top5": tally.top5 / n if with_top5 and name != WORST_CASE else None,
                "n": n, "correct": tally.correct, "seconds": round(tally.seconds, 4),
                "clean_accuracy": clean.correct / n,
                "clean_top5": clean.top5 / n if with_top5 else None,
            }
            row.update({k: int(v) if float(v).is_integer() else v for k, v in tally.stats.items()})
            if name in params:
                row["params"] = params[name]
            rows.append(row)
    return rows


@contextmanager
def _progress(enabled: bool, total: int):
    """A rich progress bar over batches (or nothing); yields the per-batch advance call."""
    if not enabled:
        yield lambda: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("attacking", total=total)
        yield lambda: bar.advance(task)
