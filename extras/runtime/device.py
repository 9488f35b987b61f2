"""The torch device a `--device` flag names."""

from __future__ import annotations

import torch

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
