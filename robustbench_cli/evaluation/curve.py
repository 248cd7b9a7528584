"""`curve=minimal`: the whole accuracy-vs-eps curve from a per-point bisection over the eps list.

A row-by-row sweep attacks every point at every eps. Robust accuracy only asks, per point,
at which listed eps the attack first fools it, and a stronger budget fools at least the
points a weaker one fools (an attack's success is monotone in eps, up to the noise of its
random start). So each point is attacked at the middle of the eps levels still in doubt:
fooled there, every larger level counts as fooled; robust, every smaller level counts as
robust. About log2(E + 1) attack runs per point replace E, and each run is exactly the
top-1 sweep's run (`top5=false`) at that eps for that point (the same attack, seeded per
point), so the table matches that sweep's wherever the attack is monotone for a point.

Each row's `seconds` and attack counters are those of the runs made at its eps. Top-1 only:
the top-5 criterion would need its own bisection. The per-point minimal fooling eps (the
smallest listed eps that fools a point; 0 for a point wrong when clean) is written to
minimal_eps.csv by `write_minimal_eps`.
"""

import math
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import torch

from robustbench_cli import attacks
from robustbench_cli.reporting.atomic import atomic_write_text
from robustbench_cli.reporting.formatting import csv_text

CURVES = ("sweep", "minimal")
MINIMAL_EPS_FILE = "minimal_eps.csv"


def bisect_rows(model, loader, spec, eps_list: list[float], clean, device, advance) -> dict:
    """{eps: Finished} for one attack over the sorted `eps_list`, by bisection per point."""
    from robustbench_cli.evaluation.runner import Finished

    levels = sorted(eps_list)
    clean = replace(clean, with_top5=False)  # top-1: attack the clean-correct points only
    attack_at = {}  # level -> the attack at that eps, built when first needed
    # Per point, the bracket (highest level survived, lowest level fooled): -1 and len(levels)
    # while unknown. A point is decided once the two are adjacent.
    survived = torch.full_like(clean.correct, -1, dtype=torch.long)
    fooled = torch.full_like(survived, len(levels))
    seconds = [0.0] * len(levels)
    stats = [defaultdict(float) for _ in levels]
    offset = clean.block.start
    for x, y in loader:
        points = clean.attacked[offset:offset + len(y)].nonzero().squeeze(1) + offset
        local = points - offset
        offset += len(y)
        low, high = survived[points], fooled[points]
        while len(open_ := (high - low > 1).nonzero().squeeze(1)):
            middle = (low[open_] + high[open_]) // 2
            for level in middle.unique().tolist():
                rows = open_[middle == level]
                if levels[level] == 0:  # no budget: the (clean-correct) points stay correct
                    low[rows] = level
                    continue
                attack = attack_at.get(level)
                if attack is None:
                    attack = attack_at[level] = attacks.build(spec.name, model, eps=levels[level],
                                                              **spec.params)
                    attack.stop_at(1)
                xs, ys = x[local[rows]].to(device), y[local[rows]].to(device)
                start = time.perf_counter()
                x_adv = attack(xs, ys, index=points[rows])
                with torch.inference_mode():
                    wrong = (model(x_adv).argmax(1) != ys).cpu()
                seconds[level] += time.perf_counter() - start
                for key, value in attack.stats.items():
                    stats[level][key] += value
                high[rows[wrong]] = level
                low[rows[~wrong]] = level
        survived[points], fooled[points] = low, high
        advance()
    fooled = clean.gather(fooled)
    for level in range(len(levels)):
        seconds[level], stats[level] = clean.shard.combine(seconds[level], stats[level])
    named = next(iter(attack_at.values()), None) or attacks.build(spec.name, model, eps=levels[-1],
                                                                  **spec.params)
    finished = {}
    for level, eps in enumerate(levels):
        correct = clean.correct.clone()
        correct[clean.attacked] = fooled[clean.attacked] > level
        correct, _ = clean.counted(correct, None)
        row = clean.row(correct, None, attack=spec.name, eps=eps, seconds=round(seconds[level], 4))
        row["curve"] = "minimal"
        finished[eps] = Finished(spec.finish_row(row, named, stats[level]), correct, None, clean.correct)
    return finished


def minimal_eps(rows, outcomes) -> dict[str, list[float]]:
    """Per attack series of `curve: minimal` rows, each point's smallest listed eps at which it
    no longer counts as correct (0: wrong when clean; inf: survives every listed eps)."""
    from robustbench_cli.reporting.rows import series_name

    by_series = defaultdict(list)
    for row, outcome in zip(rows, outcomes):
        if row.get("curve") == "minimal" and outcome is not None:
            by_series[series_name(row)].append((float(row["eps"]), outcome))
    result = {}
    for series, pairs in by_series.items():
        pairs.sort(key=lambda pair: pair[0])
        clean = pairs[0][1]["clean"]
        values = []
        for point in range(len(clean)):
            if not clean[point]:
                values.append(0.0)
                continue
            values.append(next((eps for eps, o in pairs if not o["correct"][point]), math.inf))
        result[series] = values
    return result


def write_minimal_eps(run_dir, rows, outcomes) -> Path | None:
    """minimal_eps.csv: one line per evaluated point (its position in the test set) and one
    column per attack series; None when the run has no `curve: minimal` rows."""
    values = minimal_eps(rows, outcomes)
    if not values:
        return None
    series = sorted(values)
    count = len(values[series[0]])
    body = [[point, *(values[s][point] for s in series)] for point in range(count)]
    path = Path(run_dir) / MINIMAL_EPS_FILE
    atomic_write_text(path, csv_text(["point", *series], body))
    return path
