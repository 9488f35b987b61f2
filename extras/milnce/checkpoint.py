"""Checkpoints that carry their model config and dictionary; loading released weights too."""

from __future__ import annotations

import dataclasses
import os

import torch

from extras.milnce.config import ModelConfig
from extras.milnce.s3d import S3D
from extras.milnce.text import Tokenizer, load_dictionary
from extras.runtime import checkpoints
from y8m.errors import UsageError

CHECKPOINT_FORMAT = "y8m.milnce/1"
# `<train_dir>/epoch%04d.pth.tar`, the layout of the released training code.
CHECKPOINTS = checkpoints.CheckpointFiles("epoch", ".pth.tar", width=4)
CHECKPOINT_PATTERN = f"{CHECKPOINTS.prefix}*{CHECKPOINTS.suffix}"

# The released s3d_howto100m.pth was trained with lower-cased text (S3D_HowTo100M).
RELEASED_TOKENIZER = {"max_words": 16, "lowercase": True}


def build_model(config: ModelConfig | dict) -> S3D:
    """An `S3D` from a config (dataclass or dict)."""
    if isinstance(config, dict):
        config = ModelConfig(**config)
    return S3D(**dataclasses.asdict(config))


def checkpoint_path(train_dir: str, epoch: int) -> str:
    """`<train_dir>/epoch%04d.pth.tar`."""
    return CHECKPOINTS.path(train_dir, epoch)


def list_checkpoints(train_dir: str) -> list[str]:
    """Checkpoints of a run, oldest first."""
    return CHECKPOINTS.existing(train_dir)


def latest_checkpoint(train_dir: str) -> str | None:
    """The newest checkpoint of a run, or None."""
    return CHECKPOINTS.latest(train_dir)


def save_checkpoint(state: dict, path: str, keep: int = 10) -> None:
    """Writes `state` atomically, then deletes all but the newest `keep` checkpoints beside it."""
    checkpoints.save(path, {"format": CHECKPOINT_FORMAT, **state})
    CHECKPOINTS.prune(os.path.dirname(path) or ".", keep)


def read_checkpoint(path: str) -> dict:
    """A checkpoint file, or the newest one of a run directory, as saved (on CPU)."""
    if os.path.isdir(path):
        latest = latest_checkpoint(path)
        if latest is None:
            raise UsageError(f"no {CHECKPOINT_PATTERN} in {path!r}: train first or pass a file")
        path = latest
    if not os.path.isfile(path):
        raise UsageError(f"checkpoint {path!r} not found")
    return checkpoints.load(path)


def load_model(
    path: str,
    dictionary: str | None = None,
    max_words: int | None = None,
    device: str | torch.device = "cpu",
    require_dictionary: bool = True,
) -> tuple[S3D, Tokenizer, dict]:
    """A model in eval mode and its tokenizer, from our checkpoints or the released weights.

    Args:
        path: a checkpoint written by `train`, a run directory (its newest checkpoint), or a
            plain state_dict such as the released s3d_howto100m.pth (optionally with DDP's
            "module." prefix, or inside {"state_dict": ...}).
        dictionary: the words file (.npy); required for plain state_dicts (s3d_dict.npy for
            the released model), optional override otherwise.
        max_words: tokenizer length override.
        device: where to put the model.
        require_dictionary: False when only the video branch is used (a plain state_dict then
            loads without a dictionary and the tokenizer knows no word).

    Returns:
        (model, tokenizer, the checkpoint's metadata without tensors).
    """
    state = read_checkpoint(path)
    if "model_config" in state:
        config = ModelConfig(**state["model_config"])
        tokenizer_config = dict(state["tokenizer"])
        words = tokenizer_config.pop("words")
        state_dict = state["state_dict"]
    else:
        state_dict = checkpoints.strip_module_prefix(state.get("state_dict", state))
        if "conv1.conv1.weight" not in state_dict:
            raise UsageError(f"{path!r} is not an S3D checkpoint (no conv1.conv1.weight)")
        if dictionary is None and require_dictionary:
            raise UsageError(
                f"{path!r} is a plain state_dict: pass --dictionary (s3d_dict.npy for the release)"
            )
        config = ModelConfig(
            space_to_depth=state_dict["conv1.conv1.weight"].shape[1] == 24,
            embedding_dim=state_dict["fc.weight"].shape[0],
            num_embeddings=state_dict["text_module.word_embd.weight"].shape[0],
            word_embedding_dim=state_dict["text_module.word_embd.weight"].shape[1],
            text_hidden_dim=state_dict["text_module.fc1.weight"].shape[0],
        )
        tokenizer_config = dict(RELEASED_TOKENIZER)
        words = []
    if dictionary is not None:
        words = load_dictionary(dictionary)
    if len(words) + 1 > config.num_embeddings:
        raise UsageError(
            f"dictionary has {len(words)} words but the model's word table only "
            f"{config.num_embeddings - 1}: pass the dictionary the model was trained with"
        )
    if max_words is not None:
        tokenizer_config["max_words"] = max_words
    model = build_model(config)
    model.load_state_dict(state_dict, strict=True)
    model.to(device).eval()
    if "model_config" in state:
        skip = ("state_dict", "optimizer", "scheduler", "tokenizer", "bn_training_stats")
        meta = {k: v for k, v in state.items() if k not in skip}
    else:
        meta = {"model_config": dataclasses.asdict(config), "source": "state_dict"}
    return model, Tokenizer(words, **tokenizer_config), meta
