"""The torch device a `--device` flag names."""

from __future__ import annotations

import torch

from y8m import machine
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
    except (RuntimeError, TypeError) as err:
        raise UsageError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from err
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device=cuda but no CUDA GPU is visible; use --device=cpu")
    return chosen


def bf16_supported(device: torch.device) -> bool:
    """Whether `device` computes in bfloat16 natively (on a CPU without it, autocast emulates it
    and is slower than float32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def describe_device(device: torch.device) -> dict:
    """What a bench reports about where it ran: `device` (type), `device_name`, `device_memory_gb`.

    On a GPU the name and total memory come from CUDA; on the CPU the processor's name (from
    /proc/cpuinfo where there is one) and the machine's memory, so the JSON keys are the same.
    """
    device = torch.device(device)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return {
            "device": "cuda",
            "device_name": props.name,
            "device_memory_gb": round(props.total_memory / 2**30, 2),
        }
    return {
        "device": device.type,
        "device_name": machine.cpu_name(),
        "device_memory_gb": machine.ram_gb(),
    }
