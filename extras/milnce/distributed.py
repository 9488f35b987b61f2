"""torch.distributed helpers: process-group setup from torchrun's environment, gathering."""

from __future__ import annotations

import dataclasses
import os

import torch
import torch.distributed as dist


@dataclasses.dataclass(frozen=True)
class DistContext:
    """Where this process sits: rank, world size and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str = "auto") -> DistContext:
    """Joins the process group torchrun describes (RANK, WORLD_SIZE, ...), if any.

    Backend: nccl when the device is CUDA, gloo on CPU. Without torchrun's variables (or with
    WORLD_SIZE=1) nothing is initialised and the run is single-process.

    Args:
        device: "auto" (CUDA when available), "cpu" or "cuda".
    """
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        torch_device = torch.device("cuda", local_rank)
    else:
        torch_device = torch.device("cpu")
    if world_size <= 1:
        return DistContext(device=torch_device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, torch_device)


def teardown(context: DistContext) -> None:
    """Leaves the process group that `setup` joined."""
    if context.is_distributed and dist.is_initialized():
        dist.destroy_process_group()


class _AllGather(torch.autograd.Function):
    """Concatenates equal-sized tensors from every rank along dim 0, keeping gradients.

    Every rank computes the same loss on the gathered batch, so the gradient reaching this
    rank's rows is complete locally; it is scaled by world_size so that DDP's gradient
    averaging yields exactly the single-process gradient of the global batch. (The released
    code returns the unscaled slice, i.e. 1/world_size of it; Adam barely notices either way.)
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


def all_reduce_sum(value: float, context: DistContext) -> float:
    """Sum of a Python number over ranks (for counters such as skipped videos)."""
    if not context.is_distributed:
        return value
    tensor = torch.tensor([float(value)], dtype=torch.float64, device=context.device)
    dist.all_reduce(tensor)
    return float(tensor.item())


def barrier(context: DistContext) -> None:
    """Waits for every rank (no-op when single-process)."""
    if context.is_distributed:
        dist.barrier()
