"""Tiny model settings and inputs shared by the model tests."""

from __future__ import annotations

import numpy as np

import frame_models

NUM_CLASSES = 10
FRAME_FEATURES = (("rgb", 16), ("audio", 8))
VIDEO_FEATURES = (("mean_rgb", 16), ("mean_audio", 8))
FRAME_SIZES = dict(FRAME_FEATURES)
VIDEO_SIZES = dict(VIDEO_FEATURES)
# Small sizes for every family; each model gets the ones it takes (see tiny_hparams).
TINY = {
    "cluster_size": 4,
    "audio_cluster_size": 2,
    "hidden_size": 8,
    "rnn_cells": 8,
    # Dropout off so training-mode outputs are comparable; small NeXtVLAD and Transformer sizes.
    "drop_rate": 0.0,
    "groups": 2,
    "gating_reduction": 2,
    "mix_number": 2,
    "transformer_size": 8,
    "num_heads": 2,
    "transformer_layers": 1,
    "ff_size": 16,
}


def is_frame_level(name: str) -> bool:
    return frame_models.input_mode(name)["frame_level"]


def features_for(name: str) -> tuple[tuple[str, int], ...]:
    return FRAME_FEATURES if is_frame_level(name) else VIDEO_FEATURES


def tiny_hparams(name: str) -> dict[str, int]:
    """The TINY sizes `name` takes."""
    valid = set(frame_models.valid_hparams(name))
    return {k: v for k, v in TINY.items() if k in valid}


def build(name: str, **hparams):
    """`name` with the tiny features and sizes, `hparams` on top (None restores a default)."""
    return frame_models.build(
        name, NUM_CLASSES, features_for(name), **{**tiny_hparams(name), **hparams}
    )


def frame_batch(rng, num_frames=(6, 2, 0), steps=6) -> dict[str, np.ndarray]:
    """Frame-level inputs: zero padding after each video's frames, as the readers give them."""
    num_frames = np.asarray(num_frames, "int32")
    batch = {"num_frames": num_frames}
    real = np.arange(steps)[None, :, None] < num_frames[:, None, None]
    for name, size in FRAME_SIZES.items():
        batch[name] = (rng.normal(size=(len(num_frames), steps, size)) * real).astype("float32")
    return batch


def video_batch(rng, batch=3) -> dict[str, np.ndarray]:
    return {
        name: rng.normal(size=(batch, size)).astype("float32") for name, size in VIDEO_SIZES.items()
    }


def batch_for(name: str, rng) -> dict[str, np.ndarray]:
    return frame_batch(rng) if is_frame_level(name) else video_batch(rng)


def labels(rng, batch=3) -> np.ndarray:
    return (rng.random((batch, NUM_CLASSES)) < 0.3).astype("float32")
