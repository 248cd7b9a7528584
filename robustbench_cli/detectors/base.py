"""The Detector interface: calibrate on clean data once, then decide per input.

A detector never changes the classifier it guards. Scores follow one convention: higher
means more suspicious; `rejected` is the detector's decision for each input.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch


@dataclass
class Decisions:
    scores: torch.Tensor  # float64 per input, higher = more suspicious
    rejected: torch.Tensor  # bool per input
    mutants_used: torch.Tensor | None = None  # per input, for detectors that sample mutants


class Detector(ABC):
    name: str
    score_label: str  # what the score is, for plot axes

    def __init__(self, model: torch.nn.Module, head: str):
        self.model = model  # in eval mode, on the device the inputs will come on
        self.head = head  # the checkpoint's model.head: "sce" (softmax) or "lq" (linear outputs)

    @abstractmethod
    def calibrate(self, loader, device: torch.device, seed: int) -> None:
        """Fit what the decisions need (a threshold, mutants) on clean (image, label) batches;
        anything random is drawn from `seed`."""

    @abstractmethod
    def decide(self, x: torch.Tensor) -> Decisions:
        """Scores and decisions for a batch of [0, 1] images on the model's device."""

    @abstractmethod
    def summary(self) -> dict:
        """What calibration found (threshold, ...), for the result rows; JSON-ready values."""
