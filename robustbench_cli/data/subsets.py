"""Deterministic subsets of a split, chosen from its labels only (no image is decoded)."""

from __future__ import annotations

from collections import defaultdict

import torch
from torch.utils.data import Dataset

from robustbench_cli.errors import UserError


def labels_of(dataset: Dataset) -> list[int]:
    """Labels from `.targets` (torchvision's name; a tensor or a list)."""
    targets = dataset.targets
    return targets.tolist() if isinstance(targets, torch.Tensor) else list(targets)


def class_balanced_indices(labels: list[int], count: int, what: str) -> list[int]:
    """`count` indices taken round-robin over classes in index order, each class in dataset order.

    Classes that run out are skipped, so the result has exactly `count` items.
    """
    if count > len(labels):
        raise UserError(f"{what}={count} but the split has only {len(labels)} items")
    by_class: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        by_class[label].append(index)
    queues = [by_class[label] for label in sorted(by_class)]
    picked: list[int] = []
    depth = 0
    while len(picked) < count:
        for queue in queues:
            if depth < len(queue):
                picked.append(queue[depth])
                if len(picked) == count:
                    break
        depth += 1
    return picked


def hold_out(indices: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Split `indices` into (train, val) with `fraction` of them, seeded, in val; each sorted."""
    if fraction == 0:
        return sorted(indices), []
    val_count = max(1, round(len(indices) * fraction))
    if val_count >= len(indices):
        raise UserError(
            f"dataset.val_fraction={fraction} leaves no training items out of {len(indices)}"
        )
    order = torch.randperm(len(indices), generator=torch.Generator().manual_seed(seed)).tolist()
    val = sorted(indices[position] for position in order[:val_count])
    train = sorted(indices[position] for position in order[val_count:])
    return train, val
