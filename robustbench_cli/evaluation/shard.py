"""Evaluation over several processes: each takes a contiguous block of the evaluated points,
and the per-point outcomes are gathered back in order.

`launch(trainer_cfg)` starts the processes of a `trainer` config (Lightning Fabric: the same
accelerator, devices, nodes and strategy keys as training, so `trainer=ddp_cpu` is 2 CPU
processes over gloo and `trainer=ddp` one process per GPU) and returns this process's
`Shard`. Attacks draw their randomness per point (seed, dataset index), so which process
attacks a point, and with which batch, does not change what it gets; only float reductions
in batched layers may differ, which can flip a prediction whose top two logits are closer
than `NEAR_TIE` (the runner counts those points).
"""

from collections import defaultdict
from dataclasses import dataclass

import torch

NEAR_TIE = 1e-4  # clean logit margin below which float reduction order may flip a prediction


@dataclass(frozen=True)
class Shard:
    """This process's place among `world_size` evaluating processes (1: evaluation in one)."""

    rank: int = 0
    world_size: int = 1
    device: torch.device | None = None  # the process's device when launched; None: `device` decides

    @property
    def is_main(self) -> bool:
        """The process that prints and writes the results."""
        return self.rank == 0

    def block(self, count: int) -> range:
        """The positions, among `count` points, this process evaluates."""
        return range(count * self.rank // self.world_size, count * (self.rank + 1) // self.world_size)

    def gather(self, local: torch.Tensor) -> torch.Tensor:
        """Every process's `local` (one entry per point of its block), concatenated in rank
        order: the whole evaluated set's values, on every process, on the CPU."""
        local = local.cpu()
        if self.world_size == 1:
            return local
        parts = [None] * self.world_size
        torch.distributed.all_gather_object(parts, local)
        return torch.cat(parts)

    def gather_values(self, value) -> list:
        """Every process's `value` (any picklable), in rank order."""
        if self.world_size == 1:
            return [value]
        values = [None] * self.world_size
        torch.distributed.all_gather_object(values, value)
        return values


    def combine(self, seconds: float, stats: dict) -> tuple[float, dict]:
        """A row's time (the slowest process's: the wall time) and counters (summed) over all
        processes."""
        values = self.gather_values((seconds, dict(stats)))
        total: dict[str, float] = defaultdict(float)
        for _, counters in values:
            for key, value in counters.items():
                total[key] += value
        return max(s for s, _ in values), total


SINGLE = Shard()


def launch(trainer_cfg) -> Shard:
    """Start the processes `trainer_cfg` asks for (None, or one device in one process: no
    launch) and return this process's shard. Every process returns here: the first, and
    the others, which Lightning starts by running the same command line again."""
    if trainer_cfg is None:
        return SINGLE
    from lightning_fabric import Fabric

    fabric = Fabric(accelerator=trainer_cfg.get("accelerator", "auto"),
                    devices=trainer_cfg.get("devices", "auto"),
                    num_nodes=trainer_cfg.get("num_nodes", 1),
                    strategy=trainer_cfg.get("strategy", "auto"))
    if fabric.world_size == 1:
        return Shard(device=fabric.device)
    fabric.launch()
    return Shard(fabric.global_rank, fabric.world_size, fabric.device)
