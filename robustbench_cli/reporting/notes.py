"""Warnings about results that the field treats as signs of a broken evaluation.

Each note is one line. Rows are compared only within one identity (model, dataset, defense,
checkpoint, seed, protocol). A note that compares two rows pairs their per-point outcomes
(points.npz) and fires only when McNemar's exact test finds the difference significant at
1%: a single image more or less is noise, not gradient masking. Rows without per-point
outcomes are never compared. The sanity note fires when a white-box attack at an unbounded
budget leaves significantly (binomial test, 1%) more than 1% accuracy; the restart note when
the last of several random restarts still fools significantly more than 1% of the points.
"""

import re
from collections import defaultdict
from dataclasses import dataclass

from robustbench_cli.reporting.formatting import format_eps, format_percent
from robustbench_cli.reporting.rows import (
    describe_identity,
    eps_key,
    group_by_identity,
    is_check,
    series_name,
    threat_norm,
    uses_eot,
    varying_identity_keys,
)
from robustbench_cli.reporting.stats import NOTE_LEVEL, binomial_upper_tail, mcnemar

ONE_STEP_PREFIXES = ("fgsm", "rfgsm", "step_", "fast_")
BLACK_BOX_OR_NOISE = ("nes", "square", "transfer", "gaussian", "random_sign", "trunc_normal")
# worst_case and autoattack may include black-box attacks (autoattack: Square)
NOT_WHITE_BOX = ("none", "worst_case", "autoattack")
MULTI_STEP_REFERENCE = "pgd_linf"
TORCHATTACKS_PREFIX = "torchattacks_"  # + the class, lower case (torchattacks_square)
PREDICTED_LABEL_SUFFIX = "_pred"
SANITY_FLOOR = 0.01  # accuracy allowed at an unbounded budget
LAST_RESTART_FLOOR = 0.01  # share of the points a converged attack's last restart may still fool
# fooled_by_restart_<r>, or <member>_fooled_by_restart_<r> for an ensemble's member
RESTART_COUNT = re.compile(r"^(?:(\w+)_)?fooled_by_restart_(\d+)$")


@dataclass
class _Result:
    row: dict
    correct: object = None  # per-point outcomes (bool sequence) or None
    clean: object = None  # the clean outcomes of the same points

    @property
    def accuracy(self) -> float:
        return self.row["accuracy"]


def table_notes(rows, outcomes=None) -> list[str]:
    """Human-readable, one-line warnings about suspicious rows (empty when nothing is odd).

    `outcomes`, aligned with `rows`, gives each row's {"correct": per-point bools, "clean":
    the clean ones} (see reporting.points.row_outcomes), or None where unknown."""
    rows = list(rows)
    outcomes = list(outcomes) if outcomes is not None else [None] * len(rows)
    results = [_Result(row, *((o["correct"], o.get("clean")) if o else ())) for row, o in zip(rows, outcomes)]
    keys = varying_identity_keys(rows)
    by_identity = defaultdict(list)
    for values, group in group_by_identity(rows, keys).items():
        members = {id(row) for row in group}
        by_identity[values] = [r for r in results if id(r.row) in members]
    notes = []
    for values, group in by_identity.items():
        prefix = f"[{describe_identity(keys, values)}] " if keys else ""
        notes += [prefix + note for note in _group_notes(group)]
    return notes


def _group_notes(results) -> list[str]:
    attacks = [r for r in results if r.row["attack"] != "none" and r.row.get("accuracy") is not None]
    strongest = _strongest_by_series([r for r in attacks if not is_check(r.row)])
    return [
        *_sanity(attacks),
        *_above_clean(attacks),
        *_one_step_beats_pgd(strongest),
        *_rising_with_eps(strongest),
        *_black_box_beats_white_box(strongest),
        *_label_leaking(strongest),
        *_randomized(attacks),
        *_restarts_disagree(attacks),
    ]


def _strongest_by_series(results) -> dict:
    """{series: {eps: the result with the lowest accuracy}}; repeated runs count by their
    strongest result."""
    strongest = defaultdict(dict)
    for result in results:
        by_eps = strongest[series_name(result.row)]
        eps = eps_key(result.row["eps"])
        if eps not in by_eps or result.accuracy < by_eps[eps].accuracy:
            by_eps[eps] = result
    return strongest


def significantly_below(low, high) -> float | None:
    """McNemar's p when `low` (per-point outcomes) is right on significantly fewer of the same
    points than `high`; None when it is not, or the outcomes cannot be paired."""
    if low is None or high is None or len(low) != len(high):
        return None
    p, only_low, only_high = mcnemar(low, high)
    return p if only_high > only_low and p < NOTE_LEVEL else None


def _pct(fraction) -> str:
    return f"{format_percent(fraction)}%"


def _p(p: float) -> str:
    return f"McNemar p={p:.2g}"


def _kind(series) -> str:
    """The attack a series runs: a torchattacks class is judged as our attack of its name."""
    return series.removeprefix(TORCHATTACKS_PREFIX)


def _is_one_step(series) -> bool:
    return _kind(series).startswith(ONE_STEP_PREFIXES)


def _named(series, names) -> bool:
    """Is the series one of `names`, or one with a label or norm suffix (square_l2)?"""
    return any(_kind(series) == name or _kind(series).startswith(f"{name}_") for name in names)


def _is_black_box_or_noise(series) -> bool:
    return _named(series, BLACK_BOX_OR_NOISE)


def _is_white_box(series) -> bool:
    return not _named(series, NOT_WHITE_BOX) and not _is_black_box_or_noise(series)


def _sanity_p(row) -> float | None:
    """For a sanity row: the binomial p of its correct count if at most SANITY_FLOOR of the
    points could survive an unbounded attack (None for other rows)."""
    if not is_check(row) or row.get("correct") is None or not row.get("n"):
        return None
    return binomial_upper_tail(row["correct"], row["n"], SANITY_FLOOR)


def _failed_sanity(row) -> bool:
    p = _sanity_p(row)
    return p is not None and row["accuracy"] > SANITY_FLOOR and p < NOTE_LEVEL


def _sanity(results):
    for result in results:
        if _failed_sanity(result.row):
            yield (
                f"sanity check failed: {series_name(result.row)} at an unbounded budget "
                f"(eps={format_eps(result.row['eps'])}) leaves {_pct(result.accuracy)} accuracy, "
                f"significantly more than {_pct(SANITY_FLOOR)} (binomial p={_sanity_p(result.row):.2g}): "
                f"the attack does not reach the decision boundary (gradient masking or a broken "
                f"attack); its bounded rows overstate robustness"
            )


def _above_clean(results):
    for result in results:
        if is_check(result.row):
            continue
        p = significantly_below(result.clean, result.correct)
        if p is not None:
            yield (
                f"{series_name(result.row)} at eps={format_eps(result.row['eps'])}: accuracy "
                f"{_pct(result.accuracy)} is above the clean accuracy "
                f"{_pct(result.row['clean_accuracy'])} ({_p(p)}): label leaking or gradient masking"
            )


def _one_step_beats_pgd(strongest):
    reference = strongest.get(MULTI_STEP_REFERENCE, {})
    for series, by_eps in strongest.items():
        if not _is_one_step(series):
            continue
        for eps, result in sorted(by_eps.items()):
            pgd = reference.get(eps)
            p = significantly_below(result.correct, pgd.correct) if pgd else None
            if p is not None:
                yield (
                    f"{series} at eps={format_eps(eps)} is stronger than {MULTI_STEP_REFERENCE} "
                    f"({_pct(result.accuracy)} < {_pct(pgd.accuracy)}, {_p(p)}): a one-step attack "
                    f"beating PGD suggests gradient masking or too few PGD steps"
                )


def _rising_with_eps(strongest):
    for series, by_eps in strongest.items():
        lowest = None  # the strongest result at a smaller eps so far
        for eps in sorted(by_eps):
            result = by_eps[eps]
            p = significantly_below(lowest.correct, result.correct) if lowest else None
            if p is not None:
                yield (
                    f"{series}: accuracy rises with eps ({_pct(lowest.accuracy)} at "
                    f"eps={format_eps(lowest.row['eps'])} -> {_pct(result.accuracy)} at "
                    f"eps={format_eps(eps)}, {_p(p)}): suggests gradient masking or a failing attack"
                )
                break
            if lowest is None or result.accuracy < lowest.accuracy:
                lowest = result


def _black_box_beats_white_box(strongest):
    for series, by_eps in strongest.items():
        if not _is_black_box_or_noise(series):
            continue
        for eps, result in sorted(by_eps.items()):
            white_box = [other_by_eps[eps] for other, other_by_eps in strongest.items()
                         if _is_white_box(other) and threat_norm(other) == threat_norm(series)
                         and eps in other_by_eps]
            if not white_box:
                continue
            best = min(white_box, key=lambda r: r.accuracy)
            p = significantly_below(result.correct, best.correct)
            if p is not None:
                yield (
                    f"{series} at eps={format_eps(eps)} is stronger than every white-box attack "
                    f"({_pct(result.accuracy)} < {series_name(best.row)}'s {_pct(best.accuracy)}, "
                    f"{_p(p)}): suggests gradient masking"
                )


def _label_leaking(strongest):
    for series, predicted in strongest.items():
        if not series.endswith(PREDICTED_LABEL_SUFFIX):
            continue
        true_series = series.removesuffix(PREDICTED_LABEL_SUFFIX)
        true_label = strongest.get(true_series, {})
        for eps, result in sorted(predicted.items()):
            if eps not in true_label:
                continue
            p = significantly_below(result.correct, true_label[eps].correct)
            if p is not None:
                yield (
                    f"{true_series} at eps={format_eps(eps)}: true-label accuracy "
                    f"{_pct(true_label[eps].accuracy)} exceeds predicted-label accuracy "
                    f"{_pct(result.accuracy)} ({_p(p)}): label leaking (Kurakin et al.); "
                    f"report the attack.label=pred result"
                )


def _randomized(results):
    """AutoAttack's randomness check: the clean pass saw two different outputs for the same
    inputs, so a gradient without EOT follows one draw of the model's noise."""
    without_eot = sorted({series_name(r.row) for r in results if r.row.get("randomized")
                          and (_is_white_box(series_name(r.row)) or r.row["attack"] == "autoattack")
                          and not uses_eot(r.row["attack"], r.row.get("params") or {})})
    if without_eot:
        yield (f"the model gives different outputs for the same input (a randomized defense): "
               f"{', '.join(without_eot)} ran without EOT and may overstate robustness; rerun "
               f"with attack.eot_samples=K (e.g. 20) or attack=autoattack attack.version=rand")


def _restarts_disagree(results):
    """AutoAttack's restart check: when the last of several random restarts still fools
    significantly (binomial test, 1%) more than 1% of the points, every earlier restart having
    left them robust, the restarts disagree and more of them would lower accuracy further.
    An ensemble's members with restarts (autoattack version=plus) are checked one by one."""
    for result in results:
        row = result.row
        if not row.get("n"):
            continue
        counts: dict[str, dict[int, int]] = {}
        for key, value in row.items():
            match = RESTART_COUNT.match(key)
            if match and value is not None:
                counts.setdefault(match[1] or "", {})[int(match[2])] = int(value)
        for member, found in counts.items():
            if len(found) < 2:
                continue
            restarts = max(found)
            late = found[restarts]
            p = binomial_upper_tail(late, row["n"], LAST_RESTART_FLOOR)
            if late > LAST_RESTART_FLOOR * row["n"] and p < NOTE_LEVEL:
                who = f"{series_name(row)}'s {member}" if member else series_name(row)
                remedy = ("raise attack.steps (and for a randomized model use attack.version=rand)"
                          if member else "raise attack.restarts or use attack=autoattack")
                yield (
                    f"{who} at eps={format_eps(row['eps'])}: its last restart ({restarts} of "
                    f"{restarts}) still fooled {late} points ({_pct(late / row['n'])}) that every "
                    f"earlier restart left robust (binomial p={p:.2g}): the restarts disagree, so "
                    f"the accuracy has not converged (a rugged or masked loss surface); {remedy}"
                )


def sanity_failures(rows) -> list[dict]:
    """The sanity-check rows that failed: {attack, eps, accuracy} each, for run.json."""
    return [{"attack": row["attack"], "eps": row["eps"], "accuracy": row["accuracy"]}
            for row in rows if _failed_sanity(row)]
