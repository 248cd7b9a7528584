"""Choosing a rejection threshold on clean scores for a target false-positive rate."""

import math

import torch

from robustbench_cli.checks import open_fraction
from robustbench_cli.errors import UserError


def threshold_for_fpr(scores, fpr) -> float:
    """The smallest threshold t with at most a fraction `fpr` of `scores` above it.

    Inputs are rejected when their score is > t (higher = more suspicious), so on these clean
    scores the false-positive rate is at most `fpr`; tied scores at t all stay accepted, which
    can make it lower.
    """
    fpr = open_fraction("fpr", fpr)
    scores = torch.as_tensor(scores, dtype=torch.float64).flatten()
    if scores.numel() == 0:
        raise UserError("no clean scores to choose a threshold on")
    # The tolerance keeps e.g. 0.29 * 100 (28.999999999999996) at 29 allowed rejections.
    allowed = math.floor(fpr * scores.numel() + 1e-9)
    return float(scores.sort(descending=True).values[allowed])
