"""Training pairs (noisy image, clean image, label) for the denoiser (paper section 4.1).

Each noisy image is an adversarial example made with one of the configured attacks against
the source model (the target classifier, or an ensemble of source checkpoints), at an eps
drawn per example from eps_levels evenly spaced values in eps_range; clean images are paired
with themselves too. The set is generated once per split and stored as 8-bit images (as
saved images would be; an 8-bit grid keeps eps-multiples of 1/255 inside their ball), or
made batch by batch (online).
"""

import hashlib
import inspect
import json

import torch
from torch.utils.data import DataLoader, Dataset

from robustbench_cli import attacks


def attack_params(entry: dict, eps: float) -> dict:
    """The attack's parameters for one training pair at `eps`: full-strength runs (no early
    stop, which would leave points just across the boundary), and k steps of eps / k for an
    attack given `steps` without a step size (the paper's IFGSM_k)."""
    params = {k: v for k, v in entry.items() if k != "name"}
    signature = inspect.signature(attacks.attack_class(entry["name"])).parameters
    if "early_stop" in signature:
        params.setdefault("early_stop", False)
    if "step_size" in signature and "step_ratio" not in signature and "steps" in params:
        params.setdefault("step_size", eps / params["steps"])
    return params


class PairMaker:
    """Makes noisy versions of clean batches with the configured attacks against `source`."""

    def __init__(self, source: torch.nn.Module, entries: list[dict], eps_range, eps_levels: int):
        self.source = source
        self.entries = entries
        low, high = eps_range
        steps = max(eps_levels - 1, 1)
        self.eps_values = [low + (high - low) * i / steps for i in range(eps_levels)]
        self._attacks: dict[tuple[int, float], attacks.Attack] = {}

    @property
    def kinds(self) -> int:
        """Attacks plus one: kind len(entries) is the clean image."""
        return len(self.entries) + 1

    def check(self) -> None:
        """Build every attack once, so bad parameters fail before any work."""
        for index in range(len(self.entries)):
            self.attack(index, self.eps_values[-1])

    def attack(self, index: int, eps: float):
        """Entry `index` at one eps (built once)."""
        key = (index, eps)
        if key not in self._attacks:
            entry = self.entries[index]
            self._attacks[key] = attacks.build(entry["name"], self.source, eps=eps,
                                               **attack_params(entry, eps))
        return self._attacks[key]

    def attacked(self, index: int, x, y, generator: torch.Generator) -> torch.Tensor:
        """x attacked by entry `index`, each example at its own eps."""
        self.source.to(x.device)
        levels = torch.randint(len(self.eps_values), (len(x),), generator=generator)
        x_adv = x.clone()
        for level in levels.unique().tolist():
            rows = (levels == level).nonzero().squeeze(1).to(x.device)
            x_adv[rows] = self.attack(index, self.eps_values[level])(x[rows], y[rows])
        return x_adv

    def mixed(self, x, y, generator: torch.Generator) -> torch.Tensor:
        """Each example attacked by a randomly drawn entry, or left clean (online pairs)."""
        kinds = torch.randint(self.kinds, (len(x),), generator=generator)
        noisy = x.clone()
        for kind in kinds.unique().tolist():
            if kind < len(self.entries):
                rows = (kinds == kind).nonzero().squeeze(1).to(x.device)
                noisy[rows] = self.attacked(kind, x[rows], y[rows], generator)
        return noisy


def to_bytes(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).cpu()


def generate(maker: PairMaker, dataset: Dataset, batch_size: int, seed: int, device) -> dict:
    """{"clean": uint8 N,C,H,W, "labels": N, "noisy": uint8 A,N,C,H,W} for one split.

    Each attack runs level by level over the whole split (full batches of one eps) rather
    than batch by batch, which would split every batch into small groups of one eps each."""
    generator = torch.Generator().manual_seed(seed)
    maker.source.to(device)
    loader = DataLoader(dataset, batch_size=batch_size)
    clean, labels = (torch.cat(parts) for parts in zip(*((to_bytes(x), y) for x, y in loader)))
    noisy = torch.empty((len(maker.entries), *clean.shape), dtype=torch.uint8)
    for index in range(len(maker.entries)):
        levels = torch.randint(len(maker.eps_values), (len(clean),), generator=generator)
        for level in levels.unique().tolist():
            attack = maker.attack(index, maker.eps_values[level])
            for rows in (levels == level).nonzero().squeeze(1).split(batch_size):
                x = clean[rows].to(device).float() / 255  # the stored clean image, exactly
                noisy[index, rows] = to_bytes(attack(x, labels[rows].to(device)))
    return {"clean": clean, "labels": labels, "noisy": noisy}


class PairDataset(Dataset):
    """Item i: (noisy, clean, label) for image i % N, attack i // N (the last kind: clean)."""

    def __init__(self, pairs: dict):
        self.clean, self.labels, self.noisy = pairs["clean"], pairs["labels"], pairs["noisy"]

    def __len__(self) -> int:
        return (len(self.noisy) + 1) * len(self.clean)

    def __getitem__(self, index: int):
        kind, image = divmod(index, len(self.clean))
        clean = self.clean[image].float() / 255
        noisy = clean if kind == len(self.noisy) else self.noisy[kind, image].float() / 255
        return noisy, clean, self.labels[image]


def cache_key(record: dict) -> str:
    """Names a generated set by everything it depends on (attacks, eps, source weights,
    data and split seed), so a later run with the same settings reuses it."""
    text = json.dumps(record, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
