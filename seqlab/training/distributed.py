"""Data-parallel training under torchrun: `torchrun --nproc_per_node=N -m seqlab train CONFIG`.

torchrun starts N copies of the command and tells each its place in the environment (RANK,
LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT). seqlab reads that, joins the process group
(NCCL on CUDA, gloo on CPU) and wraps the model in DistributedDataParallel, which averages the
gradients of all processes in the backward pass.

The run's arithmetic does not depend on N: `train.batch_size` is the global batch. Every process
draws the same global batch from the same seeded generator and keeps its own rows (rank r of N takes
rows r·B/N .. (r+1)·B/N − 1), so the averaged gradient is the gradient of the whole batch, and N
processes compute the losses a single process would (up to float rounding). Only rank 0 writes the
run directory; checkpoints hold the unwrapped module, so a run resumes with any N (or none).

For models that do not fit on one device, wrap them in FSDP instead (see docs/distributed.md).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from seqlab.errors import SeqlabError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class World:
    """This process's place among the training processes: rank `rank` of `size`."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """The one process that writes files and shows progress."""
        return self.rank == 0

    def rows(self, batch_size: int) -> slice:
        """This rank's rows of a global batch of `batch_size`."""
        share = batch_size // self.size
        return slice(self.rank * share, (self.rank + 1) * share)


SINGLE = World()


def world_from_env() -> World:
    """The World torchrun describes in the environment; a single process when it describes none."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return SINGLE
    return World(rank=int(os.environ["RANK"]), size=size, local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def start(world: World, device: torch.device) -> torch.device:
    """Join the process group of `world` (when distributed); returns the device this rank trains on:
    its own GPU (cuda:LOCAL_RANK) on CUDA, the CPU otherwise."""
    if not world.distributed:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise SeqlabError(f"distributed training runs on CUDA (NCCL) or the CPU (gloo), not on {device.type}")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, device_id=device if device.type == "cuda" else None)
    log.info("rank %d of %d on %s (%s)", world.rank, world.size, device, backend)
    return device


def stop(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def total(value: Tensor, world: World) -> Tensor:
    """The sum of `value` over all processes (every process gets it)."""
    if not world.distributed:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def mean(value: Tensor, world: World) -> Tensor:
    """The mean of `value` over all processes."""
    return total(value, world) / world.size if world.distributed else value


def shard(batch, rows: slice):
    """This rank's rows of a batch: tensors with a batch dimension are sliced, also inside tuples
    and dicts; anything else (None, flags) passes through."""
    if isinstance(batch, Tensor):
        return batch[rows] if batch.dim() > 0 else batch
    if isinstance(batch, tuple):
        return tuple(shard(item, rows) for item in batch)
    if isinstance(batch, dict):
        return {key: shard(item, rows) for key, item in batch.items()}
    return batch
