"""Defensive distillation (Papernot et al. 2016).

A teacher is trained with its softmax at temperature T; a student of the same architecture
is then trained at T on the teacher's soft labels softmax(teacher(x) / T). The deployed
student runs at T = 1 (plain logits), where its softmax saturates towards one-hot and its
input gradients vanish: the effect the paper reports (and that stronger attacks see through).
"""

import torch
import torch.nn.functional as F


def temperature_objective(temperature: float):
    """The teacher's loss: cross-entropy of softmax(logits / T)."""

    def objective(module, x, y):
        logits = module(x)
        return F.cross_entropy(logits / temperature, y), logits, y

    return objective


class SoftLabelObjective:
    """The student's loss: cross-entropy against the frozen teacher's softmax at T."""

    def __init__(self, teacher: torch.nn.Module, temperature: float):
        self.teacher = teacher.eval().requires_grad_(False)
        self.temperature = temperature

    def __call__(self, module, x, y):
        self.teacher.to(x.device)
        with torch.no_grad():
            soft = F.softmax(self.teacher(x) / self.temperature, dim=1)
        logits = module(x)
        loss = -(soft * F.log_softmax(logits / self.temperature, dim=1)).sum(1).mean()
        return loss, logits, y
