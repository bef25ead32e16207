"""Data-parallel fine-tuning with PyTorch's own engine: `torchrun` + DistributedDataParallel.

    torchrun --standalone --nproc_per_node 2 -m manga_intent.cli train --data ... --out ...

`torchrun` starts the processes and sets RANK/WORLD_SIZE/LOCAL_RANK; `DataParallel.from_env()` sees them,
joins the process group (gloo on CPU, nccl where CUDA devices exist, one device per local rank) and the
trainer uses three hooks: it wraps the model in DDP for the training forward pass, gives each rank its
share of every global batch, and sums the running loss statistics across ranks. Every rank draws the same
global batch order (same sampler seed), so a step sees exactly the rows a single process would, and each
rank's loss is scaled by its share of the batch so DDP's gradient average is the global batch's mean
gradient: the weights after each step match a single-process run up to floating-point summation order.
Validation is scored by every rank on the whole split, so early stopping decides the same everywhere
without a broadcast. Rank 0 alone calibrates, evaluates and writes the artifact.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


@dataclass
class DataParallel:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    backend: str
    device: torch.device

    @classmethod
    def from_env(cls, backend: str | None = None) -> DataParallel | None:
        """The process group torchrun describes in the environment, joined; None outside torchrun."""
        if not launched_by_torchrun():
            return None
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = torch.cuda.is_available() and backend != "gloo"
        backend = backend or ("nccl" if use_cuda else "gloo")
        device = torch.device(f"cuda:{local_rank}") if backend == "nccl" else torch.device("cpu")
        if backend == "nccl":
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group(backend=backend)
        return cls(
            rank=dist.get_rank(),
            world_size=dist.get_world_size(),
            local_rank=local_rank,
            local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", "1")),
            backend=backend,
            device=device,
        )

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def threads_per_process(self, usable: int) -> int:
        """Split the machine's cores between the processes on it (torchrun would otherwise give each 1)."""
        return max(1, usable // max(self.local_world_size, 1))

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module the training forward pass goes through (gradients all-reduced in backward)."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def shard(self, indices: Sequence[int]) -> tuple[list[int], float, int]:
        """(this rank's rows of a global batch, loss scale, rows that count).

        Rows are dealt round-robin. The scale n_rank x world / n_batch turns DDP's average of per-rank
        mean gradients into the mean gradient of the whole batch. A rank left without rows (a batch
        smaller than the world) still joins the all-reduce with one row at scale 0.
        """
        mine = list(indices[self.rank :: self.world_size])
        if not mine:
            return [indices[0]], 0.0, 0
        return mine, len(mine) * self.world_size / len(indices), len(mine)

    def sum(self, *values: float) -> list[float]:
        """Sum of each value over all ranks."""
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()

    def barrier(self) -> None:
        dist.barrier()

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()

    def describe(self) -> dict:
        return {"world_size": self.world_size, "backend": self.backend, "device": str(self.device)}
