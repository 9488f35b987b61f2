"""Checkpoint files of a run folder: numbered names, atomic writes, safe loading, resume.

Both extras write a dict holding, among their own entries, `training_state(...)` (weights,
optimizer, scheduler), and resume by `CheckpointFiles.resume` + `restore_training`.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re

import torch

from y8m.errors import UsageError
from y8m.fileio import atomic_path


@dataclasses.dataclass(frozen=True)
class CheckpointFiles:
    """Checkpoints named `<prefix><number><suffix>`, the number zero-padded to `width` digits.

    The number orders them (an epoch or a global step); other files in the folder are ignored.
    """

    prefix: str
    suffix: str
    width: int

    def path(self, directory: str, number: int) -> str:
        return os.path.join(directory, f"{self.prefix}{number:0{self.width}d}{self.suffix}")

    def number(self, path: str) -> int | None:
        """The number in a checkpoint's name, or None for any other file."""
        pattern = re.escape(self.prefix) + r"(\d+)" + re.escape(self.suffix)
        found = re.fullmatch(pattern, os.path.basename(path))
        return int(found.group(1)) if found else None

    def existing(self, directory: str) -> list[str]:
        """Checkpoints in `directory`, oldest first."""
        name = f"{glob.escape(self.prefix)}*{glob.escape(self.suffix)}"
        pattern = os.path.join(glob.escape(directory), name)
        found = [p for p in glob.glob(pattern) if self.number(p) is not None]
        return sorted(found, key=self.number)

    def latest(self, directory: str) -> str | None:
        """The newest checkpoint in `directory`, or None."""
        found = self.existing(directory)
        return found[-1] if found else None

    def prune(self, directory: str, keep: int) -> None:
        """Deletes all but the newest `keep` checkpoints (keep <= 0 keeps all)."""
        if keep > 0:
            for path in self.existing(directory)[:-keep]:
                os.remove(path)

    def resume(self, directory: str) -> tuple[str, dict] | None:
        """(path, contents) of the newest checkpoint to resume from; None for a new run."""
        path = self.latest(directory)
        return None if path is None else (path, load(path))


def save(path: str, payload: dict) -> None:
    """torch.save through a temporary file renamed on success, so a crash never leaves half a
    file and readers never see one."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load(path: str, map_location="cpu") -> dict:
    """A checkpoint as saved, tensors on `map_location`; only plain data and tensors load
    (weights_only), so a foreign file cannot run code.

    Raises:
        UsageError: the file is missing, corrupt or not a torch file.
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for a corrupt or foreign file
        raise UsageError(f"cannot read checkpoint {path!r}: {err}") from err


def strip_module_prefix(state_dict: dict) -> dict:
    """Drops the `module.` prefix that DistributedDataParallel adds to every key."""
    if state_dict and all(k.startswith("module.") for k in state_dict):
        return {k[len("module.") :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def training_state(model: torch.nn.Module, optimizer, scheduler) -> dict:
    """The entries a checkpoint needs to continue training exactly: weights (without DDP's
    wrapper: pass the bare model), optimizer and scheduler state."""
    return {
        "state_dict": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
    }


def restore_training(payload: dict, model: torch.nn.Module, optimizer, scheduler) -> None:
    """Loads what `training_state` saved. Call it before wrapping the model in DDP, which
    then broadcasts rank 0's (restored) weights."""
    model.load_state_dict(payload["state_dict"], strict=True)
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
