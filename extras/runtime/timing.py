"""Wall-clock timing of training steps that is honest on GPUs (kernels run asynchronously)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def sync(device: torch.device) -> None:
    """Waits for the device's queued kernels, so a clock read after it includes them."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], object], steps: int, warmup: int, device: torch.device) -> list:
    """Seconds of each of `steps` calls of `fn`, after `warmup` untimed ones (kernel choice,
    allocator growth), the device synchronised around each."""
    timings = []
    for i in range(warmup + steps):
        sync(device)
        started = time.perf_counter()
        fn()
        sync(device)
        if i >= warmup:
            timings.append(time.perf_counter() - started)
    return timings


class Throughput:
    """Items per second of a training loop, waiting for data included.

    `start()` begins a timed stretch (an epoch); each `add(n)` counts n items and the time
    since the previous mark. Time between stretches (checkpoints, evaluation) is not counted.
    """

    def __init__(self):
        self.items = 0
        self.seconds = 0.0
        self._mark = time.perf_counter()

    def start(self) -> None:
        self._mark = time.perf_counter()

    def add(self, items: int) -> None:
        now = time.perf_counter()
        self.seconds += now - self._mark
        self._mark = now
        self.items += items

    def per_s(self) -> float | None:
        """Items per second so far; None before anything was timed."""
        return self.items / self.seconds if self.seconds > 0 else None
