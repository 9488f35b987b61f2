"""Named points of a training loop where features attach without branching the loop.

An exponential moving average of the weights would add itself `after_step` (update),
`at_checkpoint` (save its weights), `at_restore` (load them) and `at_end`. (Precise BatchNorm
statistics, `extras.runtime.precise_bn`, are a part of the MIL-NCE loop itself, because they
change the checkpoint's own `state_dict`: `at_checkpoint` sees them already in the payload.)
Each extra's loop passes its own run object (parts and progress) and, per point, the keyword
arguments listed in `POINTS`.
"""

from __future__ import annotations

from collections.abc import Callable

POINTS = {
    "after_step": "loss (the step's detached loss tensor)",
    "after_epoch": "record (the epoch's history entry; an evaluation adds its metrics here)",
    "at_checkpoint": "payload (the checkpoint dict, before it is written; add entries to it)",
    "at_restore": "payload (the checkpoint being resumed from, after the loop's own state)",
    "at_end": "summary (the dict the training function returns)",
}


class Hooks:
    """Callbacks per point, called in the order added: `callback(run, **details)`."""

    def __init__(self, **callbacks: Callable | list[Callable]):
        self._callbacks: dict[str, list[Callable]] = {point: [] for point in POINTS}
        for point, given in callbacks.items():
            for callback in given if isinstance(given, (list, tuple)) else [given]:
                self.add(point, callback)

    def add(self, point: str, callback: Callable) -> Hooks:
        if point not in POINTS:
            raise ValueError(f"unknown hook point {point!r}; points: {', '.join(POINTS)}")
        self._callbacks[point].append(callback)
        return self

    def __call__(self, point: str, run, **details) -> None:
        for callback in self._callbacks[point]:
            callback(run, **details)
