"""ROC AUC and ROC curves of detection scores (higher = more suspicious), rank-based."""

import torch


def _as_scores(values) -> torch.Tensor:
    return torch.as_tensor(values, dtype=torch.float64).flatten().cpu()


def roc_auc(negatives, positives) -> float:
    """The probability that a random positive scores above a random negative, ties counting
    one half: the Mann-Whitney U statistic over both sizes, from average ranks."""
    negatives, positives = _as_scores(negatives), _as_scores(positives)
    if not len(negatives) or not len(positives):
        raise ValueError("roc_auc needs at least one negative and one positive score")
    values, order = torch.cat([negatives, positives]).sort()
    _, group, counts = torch.unique_consecutive(values, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).to(torch.float64)
    # A tie group holding 1-based ranks start + 1 .. end gets their mean.
    mean_rank = ends - (counts.to(torch.float64) - 1) / 2
    ranks = torch.empty_like(values)
    ranks[order] = mean_rank[group]
    n_pos = len(positives)
    u = ranks[len(negatives):].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (len(negatives) * n_pos))


def roc_curve(negatives, positives) -> tuple[list[float], list[float]]:
    """(false-positive rates, true-positive rates) for rejecting score >= t, t running down
    every distinct score, from (0, 0) to (1, 1)."""
    negatives, positives = _as_scores(negatives).sort().values, _as_scores(positives).sort().values
    thresholds = torch.cat([negatives, positives]).unique().flip(0)

    def share_at_or_above(sorted_scores):
        below = torch.searchsorted(sorted_scores, thresholds, side="left")
        return (len(sorted_scores) - below).to(torch.float64) / len(sorted_scores)

    fpr, tpr = share_at_or_above(negatives), share_at_or_above(positives)
    return [0.0, *fpr.tolist()], [0.0, *tpr.tolist()]
