"""torch.distributed for the extras: joining torchrun's process group, and the collectives.

torchrun describes the job in env:// variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT); without them, or with WORLD_SIZE=1, a run is one process and every helper here
is a no-op.
"""

from __future__ import annotations

import dataclasses
import os

import torch
import torch.distributed as dist

from extras.runtime.device import pick_device


@dataclasses.dataclass(frozen=True)
class Distributed:
    """This process's place in the job: rank 0 of 1 when not launched by torchrun."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: str = "auto") -> Distributed:
    """Joins the torchrun process group when WORLD_SIZE > 1 (nccl on GPUs, gloo on CPUs).

    Each process then uses GPU LOCAL_RANK when GPUs are used; a single process uses the
    device `pick_device` chooses.

    Raises:
        UsageError: see `pick_device`.
    """
    chosen = pick_device(device)
    if not launched_by_torchrun():
        return Distributed(device=chosen)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if chosen.type == "cuda":
        chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), local_rank, chosen)


def teardown(place: Distributed) -> None:
    """Leaves the process group that `setup` joined."""
    if place.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(place: Distributed) -> None:
    """Waits for every rank (no-op when single-process)."""
    if place.enabled:
        dist.barrier()


def all_reduce_sum(value: float, place: Distributed) -> float:
    """Sum of a Python number over ranks (for counters such as skipped videos)."""
    if not place.enabled:
        return value
    tensor = torch.tensor([float(value)], dtype=torch.float64, device=place.device)
    dist.all_reduce(tensor)
    return float(tensor.item())


def average(value: float, place: Distributed) -> float:
    """Mean of a float over ranks (the float itself when single-process)."""
    return all_reduce_sum(value, place) / place.world_size


class _AllGather(torch.autograd.Function):
    """Concatenates equal-sized tensors from every rank along dim 0, keeping gradients.

    Every rank computes the same loss on the gathered batch, so the gradient reaching this
    rank's rows is complete locally; it is scaled by world_size so that DDP's gradient
    averaging yields exactly the single-process gradient of the global batch. (The released
    MIL-NCE code returns the unscaled slice, i.e. 1/world_size of it; Adam barely notices.)
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        world_size = dist.get_world_size()
        ctx.rank = dist.get_rank()
        ctx.world_size = world_size
        ctx.rows = tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        start = ctx.rank * ctx.rows
        return grad_output[start : start + ctx.rows] * ctx.world_size


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """All ranks' `tensor` concatenated in rank order ([world_size * N, ...]); identity when
    not distributed. Every rank must pass the same shape."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    return _AllGather.apply(tensor)
