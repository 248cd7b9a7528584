"""Memory layout of a model's convolutions while attacks run on it."""

from contextlib import contextmanager

import torch
from torch.nn.parameter import UninitializedParameter


@contextmanager
def channels_last(model: torch.nn.Module):
    """Holds every 4-D parameter (the Conv2d weights) in channels-last layout while the block
    runs, and gives each its own tensor back after. oneDNN and cuDNN then pick their
    channels-last convolutions (for inputs of any layout), faster on the CPU (tests/bench_scale.py
    times it); the values only differ by float rounding. A model without 4-D weights is left
    as it is."""
    weights = [p for p in model.parameters()
               if not isinstance(p, UninitializedParameter) and p.dim() == 4]
    originals = [p.data for p in weights]
    for p in weights:
        p.data = p.data.contiguous(memory_format=torch.channels_last)
    try:
        yield
    finally:
        for p, original in zip(weights, originals):
            p.data = original
