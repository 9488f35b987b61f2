"""Device choice and torch.distributed set-up (torchrun's env:// variables, or one process)."""

from __future__ import annotations

import dataclasses
import os

import torch
import torch.distributed as dist

from y8m.errors import UsageError


def pick_device(device: str = "auto") -> torch.device:
    """ "auto" -> the GPU when there is one, else the CPU; anything else is passed to torch.

    Raises:
        UsageError: an unknown device name, or CUDA asked for but absent.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError as err:
        raise UsageError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from err
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device=cuda but no CUDA GPU is visible; use --device=cpu")
    return chosen


@dataclasses.dataclass(frozen=True)
class Distributed:
    """This process's place in the job: rank 0 of 1 when not launched by torchrun."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup_distributed(device: str = "auto") -> Distributed:
    """Joins the torchrun process group when WORLD_SIZE > 1 (NCCL on GPUs, Gloo on CPUs).

    Each process uses GPU LOCAL_RANK when GPUs are used. Single-process otherwise.
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
    return Distributed(dist.get_rank(), dist.get_world_size(), chosen)


def teardown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: Distributed) -> None:
    if info.enabled:
        dist.barrier()


def average(value: float, info: Distributed) -> float:
    """Mean of a float over all processes (the float itself when single-process)."""
    if not info.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=info.device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / info.world_size
