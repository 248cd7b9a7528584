"""The attack x eps sweep, one result row at a time.

Protocol (DESIGN.md): robust accuracy is over all n points; a point misclassified when
clean counts as a failure and is never attacked; the worst case over several attacks
counts a point as robust only if it survives every one of them.

Clean predictions are computed once (under inference mode) and reused by every row. Each
(attack, eps) row is finished before the next starts and handed to `on_row`, so a caller
can save it at once; rows given in `finished` (from an interrupted run) are not recomputed.
"""

import time
from collections import defaultdict
from collections.abc import Callable
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
class Finished:
    """A computed row and, per point, whether it survived (for the worst case)."""

    row: dict
    robust: torch.Tensor  # bool, one per evaluated point


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _top5_hits(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    k = min(5, logits.shape[1])
    return (logits.topk(k, dim=1).indices == y[:, None]).any(dim=1)


def evaluate(model: torch.nn.Module, dataset, specs: list[AttackSpec], eps_list: list[float], *,
             batch_size: int = 256, num_workers: int = 0, device: str = "auto",
             progress: bool = True, worst_case: bool | None = None,
             finished: dict | None = None, on_row: Callable[[Finished], None] | None = None) -> list[dict]:
    """Accuracy of `model` on `dataset` under each attack at each eps: a list of result rows,
    plus a worst-case row per eps (by default when there are several attacks).

    `finished` maps (attack, eps) to a Finished row already computed; `on_row` is called with
    every row as soon as it is done, computed or not."""
    worst_case = len(specs) > 1 if worst_case is None else worst_case
    finished = dict(finished or {})
    device = resolve_device(device)
    was_training = model.training
    model.eval().to(device)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    todo = [(s, eps) for s in specs for eps in eps_list if (s.name, eps) not in finished]
    try:
        with progress_bar(progress, len(loader) * (len(todo) + 1)) as advance:
            clean = _clean_pass(model, loader, device, advance)
            rows = []
            for spec in specs:
                for eps in eps_list:
                    if (spec.name, eps) not in finished:
                        finished[spec.name, eps] = _attack_row(model, loader, spec, eps, clean,
                                                               device, advance)
                    rows.append(finished[spec.name, eps])
                    if on_row:
                        on_row(finished[spec.name, eps])
            if worst_case:
                for eps in eps_list:
                    row = _worst_case_row([finished[s.name, eps] for s in specs], eps, clean)
                    rows.append(row)
                    if on_row:
                        on_row(row)
    finally:
        model.train(was_training)
    return [f.row for f in rows]


@dataclass
class _Clean:
    correct: torch.Tensor  # bool per point, on the CPU
    top5: torch.Tensor
    with_top5: bool

    def row(self, **fields) -> dict:
        n = len(self.correct)
        return {**fields, "n": n, "clean_accuracy": self.correct.float().mean().item(),
                "clean_top5": self.top5.float().mean().item() if self.with_top5 else None}


def _clean_pass(model, loader, device, advance) -> _Clean:
    correct, top5, classes = [], [], 0
    with torch.inference_mode():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            logits = model(x)
            correct.append((logits.argmax(1) == y).cpu())
            top5.append(_top5_hits(logits, y).cpu())
            classes = logits.shape[1]
            advance()
    return _Clean(torch.cat(correct), torch.cat(top5), classes > 5)


def _attack_row(model, loader, spec: AttackSpec, eps: float, clean: _Clean, device,
                advance) -> Finished:
    """Attack the still-correct points of every batch; the row and who survived."""
    attack = attacks.build(spec.name, model, eps=eps, **spec.params)
    robust, top5 = clean.correct.clone(), clean.top5.clone()
    stats: dict[str, float] = defaultdict(float)
    seconds, offset = 0.0, 0
    for x, y in loader:
        batch = slice(offset, offset + len(y))
        offset += len(y)
        idx = clean.correct[batch].nonzero().squeeze(1)
        if attack.eps > 0 and len(idx) and spec.name != "none":
            x, y = x[idx].to(device), y[idx].to(device)
            start = time.perf_counter()
            x_adv = attack(x, y)
            with torch.inference_mode():
                adv_logits = model(x_adv)
            seconds += time.perf_counter() - start
            points = idx + batch.start
            robust[points] = (adv_logits.argmax(1) == y).cpu()
            top5[points] = _top5_hits(adv_logits, y).cpu()
            for key, value in getattr(attack, "stats", {}).items():
                stats[key] += value
        advance()
    row = clean.row(attack=spec.name, eps=eps, accuracy=robust.float().mean().item(),
                    top5=top5.float().mean().item() if clean.with_top5 else None,
                    correct=int(robust.sum()), seconds=round(seconds, 4))
    row.update({k: int(v) if float(v).is_integer() else v for k, v in stats.items()})
    row["params"] = spec.params
    return Finished(_ordered(row), robust)


def _worst_case_row(rows: list[Finished], eps: float, clean: _Clean) -> Finished:
    survived = torch.stack([f.robust for f in rows]).all(dim=0)
    row = clean.row(attack=WORST_CASE, eps=eps, accuracy=survived.float().mean().item(), top5=None,
                    correct=int(survived.sum()), seconds=round(sum(f.row["seconds"] for f in rows), 4))
    return Finished(_ordered(row), survived)


FIRST_COLUMNS = ("attack", "eps", "accuracy", "top5", "n", "correct", "seconds", "clean_accuracy",
                 "clean_top5")


def _ordered(row: dict) -> dict:
    return {**{k: row[k] for k in FIRST_COLUMNS}, **row}


@contextmanager
def progress_bar(enabled: bool, total: int):
    """A rich progress bar over batches (or nothing); yields the per-batch advance call."""
    if not enabled:
        yield lambda: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("evaluating", total=total)
        yield lambda: bar.advance(task)
