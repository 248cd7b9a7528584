"""What tells two result rows apart: the identity fields, their canonical form and key.

Rows of different runs with one identity key measure the same thing; the newest run wins.
The checkpoint path is left out of the key (its sha256 is in), so a moved checkpoint keeps its
identity; so is the code revision, so a rerun with newer code replaces the older result.
"""

import hashlib
import json
import re

from robustbench_cli.reporting.formatting import format_eps
from robustbench_cli.reporting.rows import eps_key, series_name, short_identity

# In the identity key and stored as columns, in the order tables show them.
IDENTITY_FIELDS = ("model", "dataset", "defense", "defense_params", "detector", "detector_params",
                   "attack", "attack_params", "eps", "protocol", "n", "checkpoint_sha256", "seed",
                   "check")
JSON_FIELDS = ("defense_params", "detector_params", "attack_params")
INTEGER_FIELDS = ("n", "seed")
# Columns beside the identity: usable as filters and pivot fields, never in the key.
OTHER_FIELDS = ("kind", "checkpoint", "git_revision")
FIELDS = IDENTITY_FIELDS + OTHER_FIELDS


def canonical_json(value) -> str:
    """One text per value: sorted keys, no spaces (so equal params compare equal in SQL)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def row_kind(row: dict) -> str:
    return "detect" if "detector" in row else "eval"


def row_fields(row: dict, git_revision) -> dict:
    """The field columns of one results.json row (attack: its series name, e.g. fgsm_pred)."""
    fields = {
        "model": row.get("model"), "dataset": row.get("dataset"), "defense": row.get("defense"),
        "defense_params": canonical_json(row.get("defense_params") or {}),
        "detector": row.get("detector"),
        "detector_params": canonical_json(row["detector_params"]) if "detector_params" in row else None,
        "attack": series_name(row), "attack_params": canonical_json(row.get("params") or {}),
        "eps": eps_key(row["eps"]), "protocol": row.get("protocol"), "n": row.get("n"),
        "checkpoint_sha256": row.get("checkpoint_sha256"), "seed": row.get("seed"),
        "check": row.get("check"), "kind": row_kind(row), "checkpoint": row.get("checkpoint"),
        "git_revision": git_revision,
    }
    return {key: str(value) if isinstance(value, (list, dict)) else value for key, value in fields.items()}


def identity_key(fields: dict) -> str:
    """sha256 of the identity fields: rows with equal keys are reruns of one measurement."""
    return hashlib.sha256(canonical_json([fields.get(key) for key in IDENTITY_FIELDS]).encode()).hexdigest()


def show_field(key, value) -> str:
    """A field's value in a text table: eps as 0.1, a sha256 as 8 hex digits, None as "-"."""
    if value is None:
        return "-"
    if key == "eps":
        return format_eps(value)
    if key == "git_revision" and re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", str(value)):
        return str(value)[:8] + str(value)[40:]
    return short_identity(key, value)


def sort_key(value):
    """Orders mixed values: numbers by value, then text, then missing."""
    if value is None:
        return (2, 0, "")
    if isinstance(value, (int, float)):
        return (0, value, "")
    return (1, 0, str(value))
