"""What a result row is: its column order, the curve it belongs to, the keys that tell runs apart."""

import re
from collections import defaultdict
from pathlib import Path

LEADING_COLUMNS = (
    "attack",
    "eps",
    "protocol",
    "accuracy",
    "ci_low",
    "ci_high",
    "top5",
    "n",
    "correct",
    "seconds",
    "clean_accuracy",
    "model",
    "dataset",
    "defense",
    "checkpoint",
    "checkpoint_sha256",
    "seed",
)
# Rows differing in one of these are never compared or put in one column; a protocol too.
IDENTITY_KEYS = ("model", "dataset", "defense", "checkpoint", "checkpoint_sha256", "seed", "protocol",
                 "precision")
NAMED_BY_VALUE = ("model", "dataset", "defense")  # "vgg16" reads fine without "model="
SHORT_KEYS = {"checkpoint": "ckpt", "checkpoint_sha256": "sha"}
NORM_BY_ATTACK = {"jsma": "l0"}  # eps is a per-feature change under an L0 budget
SANITY_CHECK = "sanity"  # rows of the unbounded-budget check carry check: sanity


def is_check(row) -> bool:
    """A row of a sanity check: reported and noted, never a point of a curve or summary."""
    return bool(row.get("check"))


def column_order(rows) -> list[str]:
    """Every key the rows have: the well-known ones in their usual order, then the rest sorted."""
    present = {key for row in rows for key in row}
    leading = [key for key in LEADING_COLUMNS if key in present]
    return leading + sorted(present - set(leading))


def series_name(row) -> str:
    """The attack a row measures, with its label mode when that is not the true label and its
    norm when the attack takes one and it is L2.

    `attack.label=pred` rows become e.g. "fgsm_pred", `attack=apgd attack.norm=l2` rows
    "apgd_l2", `attack=torchattacks attack.cls=CW` rows "torchattacks_cw", so they get their
    own curve and table row (and L2 eps its own axis).
    """
    attack = str(row["attack"])
    if row.get("cls"):  # attack=torchattacks: the library's class names the series
        attack = f"{attack}_{str(row['cls']).lower()}"
    label = row.get("label")
    if label not in (None, True, "true") and not attack.endswith(f"_{label}"):
        attack = f"{attack}_{label}"
    if row.get("norm") == "l2" and threat_norm(attack) != "l2":  # attacks with a norm parameter
        attack = f"{attack}_l2"
    return attack


def eps_key(eps) -> float:
    """eps as a dictionary key: the same value computed twice (8/255) must land together."""
    return round(float(eps), 12)


def varying_identity_keys(rows) -> list[str]:
    """The identity keys (model, dataset, ...) whose value is not the same in every row."""
    return [key for key in IDENTITY_KEYS if len({repr(row.get(key)) for row in rows}) > 1]


def constant_identity(rows) -> dict:
    """The identity keys that every row has with one shared value."""
    varying = set(varying_identity_keys(rows))
    return {
        key: rows[0][key]
        for key in IDENTITY_KEYS
        if rows and key not in varying and rows[0].get(key) is not None
    }


def short_identity(key, value) -> str:
    """A compact form for tables and legends: checkpoint file name, 8 hex digits of a hash."""
    if value is None:
        return "-"
    if key == "checkpoint":
        return Path(str(value)).name
    if key == "checkpoint_sha256":
        return str(value)[:8]
    return str(value)


def group_by_identity(rows, keys) -> dict:
    """Rows split by their values of `keys`, in first-seen order."""
    groups = defaultdict(list)
    for row in rows:
        groups[tuple(row.get(key) for key in keys)].append(row)
    return dict(groups)


def describe_identity(keys, values) -> str:
    """One label for a group, e.g. "vgg16 cifar10 seed=1"; missing values are left out."""
    parts = [
        short_identity(key, value)
        if key in NAMED_BY_VALUE
        else f"{SHORT_KEYS.get(key, key)}={short_identity(key, value)}"
        for key, value in zip(keys, values)
        if value is not None
    ]
    return " ".join(parts) or "no identity"


def threat_norm(series) -> str:
    """The norm in an attack's name (pgd_l2 -> l2, default linf): eps of different norms
    are on different scales, so they are neither compared nor drawn on one axis."""
    if series in NORM_BY_ATTACK:
        return NORM_BY_ATTACK[series]
    for token in series.split("_"):
        if re.fullmatch(r"l(\d+|inf)", token):
            return token
    return "linf"


def describe_shared(rows) -> str:
    """A short title part for what all rows share, e.g. "model mlp, dataset mnist, seed 0"."""
    shared = constant_identity(rows)
    shared.pop("checkpoint_sha256", None)  # the checkpoint name is enough in a title
    return ", ".join(f"{key} {short_identity(key, value)}" for key, value in shared.items())


def has_eps_curve(rows) -> bool:
    """True when some attack (not 'none') was run at two or more eps for the same model."""
    eps_by_curve = defaultdict(set)
    keys = varying_identity_keys(rows)
    for row in rows:
        if row["attack"] != "none" and not is_check(row):
            curve = (tuple(repr(row.get(key)) for key in keys), series_name(row))
            eps_by_curve[curve].add(eps_key(row["eps"]))
    return any(len(eps_values) >= 2 for eps_values in eps_by_curve.values())


def uses_eot(name: str, params: dict) -> bool:
    """Does the attack `name` with these config params average each gradient over several
    passes of a randomized model (EOT)? autoattack's rand version does by itself."""
    return (params.get("eot_samples") or 1) > 1 or (name == "autoattack" and params.get("version") == "rand")
