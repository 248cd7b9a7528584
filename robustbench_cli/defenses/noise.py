"""Gaussian-noise training: every training input gets N(0, sigma^2) noise, clamped to [0, 1]."""

import torch


def noise_objective(sigma: float):
    def objective(module, x, y):
        noisy = (x + sigma * torch.randn_like(x)).clamp(0, 1)
        logits = module(noisy)
        return module.criterion(logits, y).mean(), logits, y

    return objective
