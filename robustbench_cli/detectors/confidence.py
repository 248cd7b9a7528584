"""Confidence-ratio detector: a low ratio of the largest to the second largest model output
marks an input as suspicious (adversarial examples tend to sit near a decision boundary).

Score = 1 / ratio = second largest / largest output, so higher = more suspicious:
- on probs (softmax models): p2 / p1 = exp(z2 - z1), in (0, 1], computed from the logits
  without forming the probabilities (no underflow to a tie at 0);
- on logits (LQ models, or softmax models by choice): z2 / z1, which is negative when only
  the top output is positive (very confident), and +inf when even the top output is <= 0
  (no class is claimed at all).
"""

import torch

from robustbench_cli.checks import number, open_fraction, optional
from robustbench_cli.detectors.base import Decisions, Detector
from robustbench_cli.detectors.thresholds import threshold_for_fpr
from robustbench_cli.errors import UserError

OUTPUTS = ("auto", "logits", "probs")


def resolve_outputs(on: str, head: str) -> str:
    """Which outputs the ratio is taken on: LQ heads have no softmax, so logits."""
    if on not in OUTPUTS:
        raise UserError(f"on must be one of {', '.join(OUTPUTS)}, got {on!r}")
    if on == "auto":
        return "logits" if head == "lq" else "probs"
    if on == "probs" and head == "lq":
        raise UserError("on=probs needs a softmax model; this checkpoint has model.head=lq (use logits)")
    return on


def inverse_ratio(logits: torch.Tensor, on: str) -> torch.Tensor:
    """Second largest over largest output per row (float64), as described above."""
    top = logits.to(torch.float64).topk(2, dim=1).values
    first, second = top[:, 0], top[:, 1]
    if on == "probs":
        return torch.exp(second - first)
    return torch.where(first > 0, second / first, torch.full_like(first, float("inf")))


class ConfidenceRatio(Detector):
    name = "confidence_ratio"

    def __init__(self, model, *, on="auto", fpr=0.05, threshold=None, head="sce"):
        super().__init__(model, head)
        self.on = resolve_outputs(str(on), head)
        self.fpr = open_fraction("fpr", fpr)
        self.threshold = optional(number)("threshold", threshold)
        self.threshold_given = self.threshold is not None
        self.score_label = ("p2 / p1 (second / largest probability)" if self.on == "probs"
                            else "z2 / z1 (second / largest logit)")

    def _scores(self, x) -> torch.Tensor:
        with torch.no_grad():
            logits = self.model(x)
        if logits.shape[1] < 2:
            raise UserError("confidence_ratio needs a model with at least two outputs")
        return inverse_ratio(logits, self.on)

    def calibrate(self, loader, device, seed) -> None:
        if self.threshold_given:
            return
        scores = torch.cat([self._scores(x.to(device)).cpu() for x, _ in loader])
        self.threshold = threshold_for_fpr(scores, self.fpr)

    def decide(self, x) -> Decisions:
        scores = self._scores(x)
        return Decisions(scores, scores > self.threshold)

    def summary(self) -> dict:
        return {"threshold": self.threshold,
                "threshold_from": "given" if self.threshold_given else f"fpr={self.fpr:g}",
                "on": self.on}
