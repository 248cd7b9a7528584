"""The attack x eps sweep, one result row at a time, under one of two protocols.

- `robust` (RobustBench; the default): a point counts only if it is correct clean and under
  attack; clean-wrong points are never attacked. Iterative attacks stop a point at its first
  fooling iterate. With top-5, every clean-top-5-correct point is attacked, a point counts at
  top-5 only if its true class is in both its clean and its adversarial top-5, and iterative
  attacks stop a point only once its true class has left the top-5.
- `all_points` (Kurakin et al. 2017, document 004): every point is attacked with its label
  (true or predicted, per attack) and the accuracy is that of the adversarial images, which
  can exceed the clean accuracy (label leaking). Iterative attacks run every iteration.

The worst case over several attacks counts a point only if it survives every one of them.
With `sanity`, each white-box attack is also run at an unbounded budget (L-inf eps 1, L2 the
image's diameter), where a working attack leaves ~0% (Carlini et al. 2019): a row marked
`check: sanity`. It is counted as under `robust` whatever the protocol: only clean-correct
points are attacked, where true and predicted labels agree, so the row asks one question,
whether the attack reaches the decision boundary.

Clean predictions are computed once (under inference mode) and reused by every row. Each row
is finished before the next starts and handed to `on_row`, so a caller can save it at once;
rows given in `finished` (from an interrupted run) are not recomputed.
"""

import json
import math
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import torch
from torch.utils.data import DataLoader, Subset

from robustbench_cli import attacks, checks
from robustbench_cli.attacks.base import in_top_k
from robustbench_cli.errors import UserError
from robustbench_cli.evaluation.curve import CURVES, bisect_rows
from robustbench_cli.evaluation.shard import NEAR_TIE, SINGLE, Shard
from robustbench_cli.models.layout import channels_last
from robustbench_cli.models.precision import autocast
from robustbench_cli.reporting.rows import SANITY_CHECK, series_name
from robustbench_cli.reporting.stats import interval_fields

PROTOCOLS = ("robust", "all_points")
TOP5_CHOICES = ("auto", "true", "false")
WORST_CASE = "worst_case"


@dataclass
class AttackSpec:
    name: str
    params: dict = field(default_factory=dict)  # everything but eps
    check: str | None = None  # "sanity": the unbounded-budget check of a white-box attack

    @property
    def norm(self) -> str | None:
        """The norm named in the params (attacks with a norm key), as the attack reads it."""
        norm = self.params.get("norm")
        return norm.lower() if isinstance(norm, str) else norm

    def key(self, eps: float) -> tuple:
        """What tells its row apart: the series (attack, label mode, norm), eps and check."""
        return series_name({"attack": self.name, "label": self.params.get("label"),
                            "norm": self.norm, "cls": self.params.get("cls")}), eps, self.check

    def finish_row(self, row: dict, attack, stats: dict) -> dict:
        """Adds what every attack row carries: the fields naming its series (the label and norm
        the attack ran with, for attacks that take them), its counters and its params."""
        row.update({key: getattr(attack, key) for key in ("label", "norm", "cls") if key in self.params})
        row.update({k: int(v) if float(v).is_integer() else v for k, v in stats.items()})
        row["params"] = self.params
        return row


@dataclass
class Images:
    """Per evaluated point, the image a row showed the model (adversarial where attacked, else
    clean), its label, the model's prediction on it and whether it was attacked."""

    images: torch.Tensor
    labels: torch.Tensor
    predictions: torch.Tensor
    attacked: torch.Tensor
    norm: str | None = None  # the ball the attack kept them in


@dataclass
class Finished:
    """A computed row and, per point, whether it counts as correct (top-1, and top-5 where
    reported) under the row's attack and protocol."""

    row: dict
    correct: torch.Tensor  # bool, one per evaluated point
    top5: torch.Tensor | None = None
    clean: torch.Tensor | None = None  # the clean top-1 outcomes the row is paired with
    images: "Images | None" = None  # what the model saw, with `keep_images`


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def check_protocol(protocol) -> str:
    return checks.choice("protocol", protocol, PROTOCOLS)


def check_top5(value) -> str:
    """auto, true or false (YAML reads true/false as bools)."""
    return checks.choice("top5", {True: "true", False: "false"}.get(value, value), TOP5_CHOICES)


def check_curve(curve, protocol: str, top5: str) -> str:
    """sweep (null) or minimal; the bisection counts top-1 under the `robust` protocol only."""
    curve = checks.choice("curve", "sweep" if curve is None else curve, CURVES)
    if curve == "minimal" and protocol != "robust":
        raise UserError("curve=minimal needs protocol=robust (under all_points a point can turn "
                        "correct under attack, so its outcome is not monotone in eps)")
    if curve == "minimal" and top5 == "true":
        raise UserError("curve=minimal reports top-1 only; drop top5=true or use curve=sweep")
    return curve


def sanity_specs(specs: list[AttackSpec], image_numel: int) -> list[tuple[AttackSpec, float]]:
    """The unbounded-budget check for each white-box (gradient, L-inf or L2) attack: the
    attack itself if it iterates, else PGD of its norm, with the attack's EOT and BPDA (a
    plain PGD would fail the check on a defense only they get through); one check per attack
    and label, iterating attacks first (a one-step attack's PGD may already be there)."""
    classes = [(spec, attacks.attack_class(spec.name)) for spec in specs if not spec.check]
    # An attack with a norm parameter (apgd, square, ...) runs in the ball it names.
    white_box = [(spec, cls, spec.norm or cls.norm) for spec, cls in classes]
    white_box = [item for item in white_box if item[1].uses_gradients and item[2] in ("linf", "l2")]
    checks, seen = [], set()
    for spec, cls, norm in sorted(white_box, key=lambda item: not item[1].iterative):
        if cls.iterative:
            check = AttackSpec(spec.name, dict(spec.params), SANITY_CHECK)
        else:
            adaptive = {k: spec.params[k] for k in attacks.ADAPTIVE_PARAMS if k in spec.params}
            check = AttackSpec(f"pgd_{norm}", adaptive, SANITY_CHECK)
        if check.key(0) not in seen:
            seen.add(check.key(0))
            budget = 1.0 if norm == "linf" else math.sqrt(image_numel)  # [0, 1]^d's diameter
            checks.append((check, budget))
    return checks


def evaluate(model: torch.nn.Module, dataset, specs: list[AttackSpec], eps_list: list[float], *,
             protocol: str = "robust", top5="auto", sanity: bool = False,
             batch_size: int = 256, num_workers: int = 0, device: str = "auto",
             progress: bool = True, worst_case: bool | None = None,
             curve: str = "sweep", finished: dict | None = None,
             on_row: Callable[[Finished], None] | None = None,
             on_clean: Callable[["_Clean"], None] | None = None,
             shard: Shard = SINGLE, precision: str = "32", keep_images: bool = False) -> list[dict]:
    """Accuracy of `model` on `dataset` under each attack at each eps: a list of result rows,
    plus a worst-case row per eps (by default when there are several attacks) and, with
    `sanity`, one unbounded-budget row per white-box attack.

    `curve="minimal"` finds each attack's rows by a per-point bisection over the eps list
    (see evaluation/curve.py) instead of one run per eps: top-1, `robust` protocol only.

    `finished` maps AttackSpec.key(eps) to a Finished row already computed; `on_row` is
    called with every row as soon as it is done, computed or not, and `on_clean` with the
    clean outcomes once they are known.

    `shard` (see evaluation/shard.py): this process evaluates its block of the points and
    every row is built from all processes' per-point outcomes, so each process returns the
    whole table; only the main one shows progress. `precision` (see models/precision.py):
    the clean pass and the attacks run under that autocast. `keep_images`: each computed
    attack row's Finished carries its Images (not the sanity rows)."""
    protocol, top5 = check_protocol(protocol), check_top5(top5)
    curve = check_curve(curve, protocol, top5)
    worst_case = len(specs) > 1 if worst_case is None else worst_case
    # A resumed run keeps only rows of its own kind (sweep or minimal) and its sanity rows.
    finished = {key: f for key, f in (finished or {}).items()
                if key[2] or (f.row.get("curve") == "minimal") == (curve == "minimal")}
    device = shard.device or resolve_device(device)
    jobs = [(s, eps) for s in specs for eps in eps_list]
    if sanity:
        jobs += sanity_specs(specs, dataset[0][0].numel())
    _refuse_other_params(finished, jobs)
    was_training = model.training
    model.eval().to(device)
    block = shard.block(len(dataset))
    loader = DataLoader(dataset if shard.world_size == 1 else Subset(dataset, block),
                        batch_size=batch_size, shuffle=False, num_workers=num_workers)
    bisected = curve == "minimal"
    # Passes over the data: the clean one, one per missing row (one per attack when bisected).
    todo = {spec.key(0)[0] if bisected and not spec.check else spec.key(eps)
            for spec, eps in jobs if spec.key(eps) not in finished}
    try:
        with channels_last(model), autocast(precision, device), progress_bar(
                progress and shard.is_main, len(loader) * (len(todo) + 1)) as advance:
            clean = _clean_pass(model, loader, device, advance, protocol, top5, shard, block)
            if on_clean:
                on_clean(clean)
            rows = []
            for spec, eps in jobs:
                key = spec.key(eps)
                if key not in finished and bisected and not spec.check:
                    # The whole curve of this attack at once; rows already kept stay.
                    curve_rows = bisect_rows(model, loader, spec, eps_list, clean, device, advance)
                    finished.update({spec.key(e): f for e, f in curve_rows.items()
                                     if spec.key(e) not in finished})
                if key not in finished:
                    finished[key] = _attack_row(model, loader, spec, eps, clean, device, advance,
                                                keep_images and not spec.check)
                rows.append(finished[key])
                if on_row:
                    on_row(finished[key])
            if worst_case:
                for eps in eps_list:
                    row = _worst_case_row([finished[s.key(eps)] for s in specs], eps, clean)
                    rows.append(row)
                    if on_row:
                        on_row(row)
    finally:
        model.train(was_training)
    return [f.row for f in rows]


@dataclass
class _Clean:
    correct: torch.Tensor  # bool per point (of every process), on the CPU
    top5: torch.Tensor
    with_top5: bool
    protocol: str
    randomized: bool = False  # two passes over the same inputs disagreed
    near_ties: int = 0  # points whose two largest clean logits are closer than NEAR_TIE
    shard: Shard = SINGLE
    block: range = range(0)  # the positions of this process's points

    def gather(self, local: torch.Tensor) -> torch.Tensor:
        """All processes' values of a per-point tensor, from this process's full-length copy
        (whose block it filled)."""
        return self.shard.gather(local[self.block.start:self.block.stop])

    @property
    def attacked(self) -> torch.Tensor:
        """The points an attack runs on."""
        if self.protocol == "all_points":
            return torch.ones_like(self.correct)
        return self.top5 if self.with_top5 else self.correct

    def counted(self, correct: torch.Tensor, top5: torch.Tensor | None):
        """Per point, whether it counts (top-1, top-5) given its adversarial outcomes."""
        if self.protocol == "robust":
            correct = correct & self.correct
            top5 = None if top5 is None else top5 & self.top5
        return correct, top5

    def row(self, correct: torch.Tensor, top5: torch.Tensor | None, **fields) -> dict:
        n, hits = len(correct), int(correct.sum())
        row = {**fields, "protocol": self.protocol, "accuracy": hits / n,
               **interval_fields(hits, n), "n": n, "correct": hits}
        if top5 is not None:
            top5_hits = int(top5.sum())
            row.update(top5=top5_hits / n, top5_correct=top5_hits, **interval_fields(top5_hits, n, "top5_"))
        else:
            row["top5"] = None
        row.update(clean_accuracy=int(self.correct.sum()) / n,
                   clean_top5=int(self.top5.sum()) / n if self.with_top5 else None)
        if self.randomized:
            row["randomized"] = True
        return _ordered(row)


def _clean_pass(model, loader, device, advance, protocol, top5, shard, block) -> _Clean:
    correct, hits, classes, randomized = [], [], 0, None
    near_ties = 0
    with torch.inference_mode():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            logits = model(x)
            if randomized is None:  # AutoAttack's check: the same inputs, another pass
                randomized = not torch.allclose(model(x), logits, rtol=1e-4, atol=1e-5)
            correct.append((logits.argmax(1) == y).cpu())
            hits.append(in_top_k(logits, y, 5).cpu())
            classes = logits.shape[1]
            top2 = logits.topk(min(2, classes), dim=1).values
            near_ties += int((top2[:, 0] - top2[:, -1] < NEAR_TIE).sum()) if classes > 1 else 0
            advance()
    # A process may have no points: the others tell the class count and the randomness.
    processes = shard.gather_values((classes, bool(randomized), near_ties))
    classes = max(c for c, _, _ in processes)
    randomized = any(r for _, r, _ in processes)
    near_ties = sum(t for _, _, t in processes)
    if top5 == "true" and classes <= 5:
        raise UserError(f"top5=true needs more than 5 classes, the model predicts {classes}")
    with_top5 = classes > 5 if top5 == "auto" else top5 == "true"
    empty = torch.zeros(0, dtype=torch.bool)
    return _Clean(shard.gather(torch.cat(correct or [empty])), shard.gather(torch.cat(hits or [empty])),
                  with_top5, protocol, randomized, near_ties, shard, block)


def _refuse_other_params(finished: dict, jobs) -> None:
    """A resumed row stands for this run's only if it ran with the same attack parameters:
    a row of `steps=10` must not be kept for a rerun asking `steps=100`."""
    for spec, eps in jobs:
        done = finished.get(spec.key(eps))
        if done is None or "params" not in done.row:
            continue
        before, now = _plain(done.row["params"]), _plain(spec.params)
        if before != now:
            changed = ", ".join(f"{k}={before.get(k)!r} -> {now.get(k)!r}"
                                for k in sorted(before.keys() | now.keys()) if before.get(k) != now.get(k))
            raise UserError(f"cannot resume: the finished {series_name(done.row)} row at "
                            f"eps={eps:g} ran with other attack parameters ({changed}); rerun into "
                            f"a new folder, or without resume=true")


def _plain(params) -> dict:
    """Attack parameters as JSON stores them (tuples as lists), for comparing a resumed row's."""
    return json.loads(json.dumps(dict(params or {}), default=str))


def _attack_row(model, loader, spec: AttackSpec, eps: float, clean: _Clean, device,
                advance, keep_images: bool = False) -> Finished:
    """Attack the points the protocol attacks, batch by batch; the row and who counts."""
    attack = attacks.build(spec.name, model, eps=eps, **spec.params)
    protocol = clean.protocol  # the run's, recorded in the row
    if spec.check:
        clean = replace(clean, protocol="robust", with_top5=False)
    if clean.protocol == "all_points":
        attack.stop_at(None)  # accuracy of the finished adversarial images
    else:
        attack.stop_at(5 if clean.with_top5 else 1)
    with_top5 = clean.with_top5
    correct, top5, attacked = clean.correct.clone(), clean.top5.clone(), clean.attacked
    stats: dict[str, float] = defaultdict(float)
    seconds, offset = 0.0, clean.block.start
    shown: list[Images] = []
    for x, y in loader:
        batch = slice(offset, offset + len(y))
        offset += len(y)
        idx = attacked[batch].nonzero().squeeze(1)
        images = x.clone() if keep_images else None
        if attack.eps > 0 and len(idx) and spec.name != "none":
            xs, ys = x[idx].to(device), y[idx].to(device)
            start = time.perf_counter()
            points = idx + batch.start
            x_adv = attack(xs, ys, index=points)  # dataset indices: per-point seeding
            with torch.inference_mode():
                adv_logits = model(x_adv)
            seconds += time.perf_counter() - start
            correct[points] = (adv_logits.argmax(1) == ys).cpu()
            top5[points] = in_top_k(adv_logits, ys, 5).cpu()
            for key, value in getattr(attack, "stats", {}).items():
                stats[key] += value
            if keep_images:
                images[idx] = x_adv.cpu().to(images.dtype)
        if keep_images:
            with torch.inference_mode():
                predictions = model(images.to(device)).argmax(1).cpu()
            shown.append(Images(images, y, predictions, attacked[batch].clone()))
        advance()
    kept = replace(_gathered_images(shown, clean.shard), norm=attack.norm) if keep_images else None
    correct, top5 = clean.gather(correct), clean.gather(top5)
    seconds, stats = clean.shard.combine(seconds, stats)
    correct, top5 = clean.counted(correct, top5 if with_top5 else None)
    row = clean.row(correct, top5, attack=spec.name, eps=eps, seconds=round(seconds, 4))
    row["protocol"] = protocol
    if spec.check:
        row["check"] = spec.check
    return Finished(spec.finish_row(row, attack, stats), correct, top5, clean.correct, kept)


def _gathered_images(batches: list[Images], shard: Shard) -> Images:
    """All processes' kept images of a row, in point order."""
    fields = ("images", "labels", "predictions", "attacked")
    local = {name: torch.cat([getattr(b, name) for b in batches]) for name in fields} if batches else None
    parts = [part for part in shard.gather_values(local) if part is not None]
    return Images(**{name: torch.cat([part[name] for part in parts]) for name in fields})


def _worst_case_row(rows: list[Finished], eps: float, clean: _Clean) -> Finished:
    survived = torch.stack([f.correct for f in rows]).all(dim=0)
    row = clean.row(survived, None, attack=WORST_CASE, eps=eps,
                    seconds=round(sum(f.row["seconds"] for f in rows), 4))
    return Finished(row, survived, None, clean.correct)


FIRST_COLUMNS = ("attack", "eps", "protocol", "accuracy", "ci_low", "ci_high", "top5", "n",
                 "correct", "seconds", "clean_accuracy", "clean_top5")


def _ordered(row: dict) -> dict:
    return {**{k: row[k] for k in FIRST_COLUMNS if k in row}, **row}


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
