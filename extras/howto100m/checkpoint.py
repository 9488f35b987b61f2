"""Checkpoint files: atomic save, latest-first discovery, and loading ours or the reference's.

A training checkpoint `ckpt-<global step>.pt` is a dict with `config` (the Net constructor
arguments, `embd_dim` included), `data` (text and clip options), `state_dict`, `optimizer`,
`scheduler`, `epoch`, `step`, `global_step`, `history` and `train` (the flags). A reference
checkpoint (a bare state_dict, with or without the DDP `module.` prefix) also loads: its
sizes are read from the weight shapes.
"""

from __future__ import annotations

import os

from extras.howto100m.model import Net
from extras.runtime import checkpoints
from extras.runtime.checkpoints import strip_module_prefix
from y8m.errors import UsageError

CHECKPOINTS = checkpoints.CheckpointFiles("ckpt-", ".pt", width=9)
FINAL_MODEL = "model.pt"


def checkpoint_path(output_dir: str, global_step: int) -> str:
    return CHECKPOINTS.path(output_dir, global_step)


def list_checkpoints(output_dir: str) -> list[str]:
    """Training checkpoints in `output_dir`, oldest first."""
    return CHECKPOINTS.existing(output_dir)


def latest_checkpoint(output_dir: str) -> str | None:
    return CHECKPOINTS.latest(output_dir)


def save_checkpoint(path: str, payload: dict) -> None:
    """Written atomically: a crash never leaves half a file."""
    checkpoints.save(path, payload)


def prune_checkpoints(output_dir: str, keep: int) -> None:
    """Deletes all but the newest `keep` training checkpoints (keep <= 0 keeps all)."""
    CHECKPOINTS.prune(output_dir, keep)


def config_from_state_dict(state_dict: dict) -> dict:
    """Net constructor arguments implied by the weight shapes of a reference state_dict.

    Raises:
        UsageError: the keys are not those of a HowTo100M Net.
    """
    try:
        embd_dim, video_dim = state_dict["GU_video.fc.weight"].shape
        pooled_dim, we_dim = state_dict["text_pooling.fc.weight"].shape
    except KeyError as err:
        raise UsageError(f"not a HowTo100M model state_dict: no key {err}") from err
    return {
        "embd_dim": int(embd_dim),
        "video_dim": int(video_dim),
        "we_dim": int(we_dim),
        "sentence_dim": -1 if pooled_dim == embd_dim else int(pooled_dim),
        "mask_padding": False,
    }


def resolve_checkpoint(path: str) -> str:
    """A checkpoint file, or the newest one in a training folder.

    Raises:
        UsageError: nothing to load at `path`.
    """
    if os.path.isdir(path):
        found = latest_checkpoint(path)
        if found is None and os.path.isfile(os.path.join(path, FINAL_MODEL)):
            found = os.path.join(path, FINAL_MODEL)
        if found is None:
            raise UsageError(f"no checkpoint (ckpt-*.pt or {FINAL_MODEL}) in {path!r}")
        return found
    if not os.path.isfile(path):
        raise UsageError(f"checkpoint {path!r} not found; pass a .pt file or a training folder")
    return path


def read_checkpoint(path: str, map_location="cpu") -> dict:
    """Loads a checkpoint file into our dict layout (a bare state_dict is wrapped).

    Raises:
        UsageError: unreadable file.
    """
    path = resolve_checkpoint(path)
    payload = checkpoints.load(path, map_location)
    if isinstance(payload, dict) and "state_dict" in payload:
        payload = dict(payload)
        payload["state_dict"] = strip_module_prefix(payload["state_dict"])
        payload.setdefault("config", config_from_state_dict(payload["state_dict"]))
    elif isinstance(payload, dict):
        state_dict = strip_module_prefix(payload)
        payload = {"state_dict": state_dict, "config": config_from_state_dict(state_dict)}
    else:
        raise UsageError(f"{path} holds a {type(payload).__name__}, not a state_dict")
    payload["path"] = path
    payload.setdefault("data", {})
    return payload


def load_net(path: str, map_location="cpu") -> tuple[Net, dict]:
    """Builds a Net from a checkpoint and loads its weights strictly.

    Returns:
        (net in eval mode, the checkpoint dict without the optimizer state).
    """
    payload = read_checkpoint(path, map_location)
    net = Net(**payload["config"])
    try:
        net.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as err:
        raise UsageError(f"{payload['path']} does not match the HowTo100M Net: {err}") from err
    payload.pop("optimizer", None)
    return net.eval(), payload
