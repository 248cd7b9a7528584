"""Warnings about results that the field treats as signs of a broken evaluation.

Each note is one line. Rows are compared only within one model/dataset/defense/checkpoint/seed.
"""

from collections import defaultdict

from robustbench_cli.reporting.formatting import format_eps, format_percent
from robustbench_cli.reporting.rows import (
    describe_identity,
    eps_key,
    group_by_identity,
    series_name,
    threat_norm,
    varying_identity_keys,
)

ONE_STEP_PREFIXES = ("fgsm", "step_", "fast_")
BLACK_BOX_OR_NOISE = ("nes", "transfer", "gaussian", "random_sign", "trunc_normal")
NOT_WHITE_BOX = ("none", "worst_case")  # worst_case may include black-box attacks
MULTI_STEP_REFERENCE = "pgd_linf"
RISE_TOLERANCE = 0.005  # half a percentage point: smaller rises are sampling noise
LABEL_LEAK_MARGIN = 0.01
PREDICTED_LABEL_SUFFIX = "_pred"
# Above-clean checks allow for float rounding only: under the protocol it can never happen.
ROUNDING = 1e-9


def table_notes(rows) -> list[str]:
    """Human-readable, one-line warnings about suspicious rows (empty when nothing is odd)."""
    rows = list(rows)
    keys = varying_identity_keys(rows)
    notes = []
    for values, group in group_by_identity(rows, keys).items():
        prefix = f"[{describe_identity(keys, values)}] " if keys else ""
        notes += [prefix + note for note in _group_notes(group)]
    return notes


def _group_notes(rows) -> list[str]:
    strongest = _strongest_by_series(rows)
    return [
        *_above_clean(rows),
        *_one_step_beats_pgd(strongest),
        *_rising_with_eps(strongest),
        *_black_box_beats_white_box(strongest),
        *_label_leaking(strongest),
    ]


def _strongest_by_series(rows) -> dict:
    """{series: {eps: lowest accuracy}}; repeated runs count by their strongest result."""
    strongest = defaultdict(dict)
    for row in rows:
        if row["attack"] == "none" or row.get("accuracy") is None:
            continue
        by_eps = strongest[series_name(row)]
        eps = eps_key(row["eps"])
        by_eps[eps] = min(row["accuracy"], by_eps.get(eps, row["accuracy"]))
    return strongest


def _pct(fraction) -> str:
    return f"{format_percent(fraction)}%"


def _is_one_step(series) -> bool:
    return series.startswith(ONE_STEP_PREFIXES)


def _is_black_box_or_noise(series) -> bool:
    return any(series == name or series.startswith(f"{name}_") for name in BLACK_BOX_OR_NOISE)


def _is_white_box(series) -> bool:
    return series not in NOT_WHITE_BOX and not _is_black_box_or_noise(series)


def _above_clean(rows):
    for row in rows:
        clean, accuracy = row.get("clean_accuracy"), row.get("accuracy")
        if row["attack"] == "none" or clean is None or accuracy is None:
            continue
        if accuracy > clean + ROUNDING:
            yield (
                f"{series_name(row)} at eps={format_eps(row['eps'])}: accuracy {_pct(accuracy)} is "
                f"above the clean accuracy {_pct(clean)} (possible label leaking or gradient masking)"
            )


def _one_step_beats_pgd(strongest):
    reference = strongest.get(MULTI_STEP_REFERENCE, {})
    for series, by_eps in strongest.items():
        if not _is_one_step(series):
            continue
        for eps, accuracy in sorted(by_eps.items()):
            if eps in reference and accuracy < reference[eps]:
                yield (
                    f"{series} at eps={format_eps(eps)} is stronger than {MULTI_STEP_REFERENCE} "
                    f"({_pct(accuracy)} < {_pct(reference[eps])}): a one-step attack beating PGD "
                    f"suggests gradient masking or too few PGD steps"
                )


def _rising_with_eps(strongest):
    for series, by_eps in strongest.items():
        lowest_eps = None
        for eps in sorted(by_eps):
            if lowest_eps is not None and by_eps[eps] > by_eps[lowest_eps] + RISE_TOLERANCE:
                yield (
                    f"{series}: accuracy rises with eps ({_pct(by_eps[lowest_eps])} at "
                    f"eps={format_eps(lowest_eps)} -> {_pct(by_eps[eps])} at eps={format_eps(eps)}): "
                    f"suggests gradient masking or a failing attack"
                )
                break
            if lowest_eps is None or by_eps[eps] < by_eps[lowest_eps]:
                lowest_eps = eps


def _black_box_beats_white_box(strongest):
    for series, by_eps in strongest.items():
        if not _is_black_box_or_noise(series):
            continue
        for eps, accuracy in sorted(by_eps.items()):
            white_box = [
                other_by_eps[eps]
                for other, other_by_eps in strongest.items()
                if _is_white_box(other) and threat_norm(other) == threat_norm(series) and eps in other_by_eps
            ]
            if white_box and accuracy < min(white_box):
                yield (
                    f"{series} at eps={format_eps(eps)} is stronger than every white-box attack "
                    f"({_pct(accuracy)} < {_pct(min(white_box))}): suggests gradient masking"
                )


def _label_leaking(strongest):
    for series, predicted in strongest.items():
        if not series.endswith(PREDICTED_LABEL_SUFFIX):
            continue
        true_label = strongest.get(series.removesuffix(PREDICTED_LABEL_SUFFIX), {})
        for eps, accuracy in sorted(predicted.items()):
            if eps in true_label and true_label[eps] > accuracy + LABEL_LEAK_MARGIN:
                yield (
                    f"{series.removesuffix(PREDICTED_LABEL_SUFFIX)} at eps={format_eps(eps)}: "
                    f"true-label accuracy {_pct(true_label[eps])} exceeds predicted-label accuracy "
                    f"{_pct(accuracy)} by more than 1 point: label leaking (Kurakin et al.); "
                    f"report the attack.label=pred result"
                )
