"""Batched inference: per-window video features and sentence embeddings."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from extras.milnce.data import ClipWindows
from extras.milnce.s3d import S3D
from extras.milnce.text import Tokenizer

FEATURES = ("video_embedding", "mixed_5c")


@torch.inference_mode()
def extract_windows(
    model: S3D,
    dataset: ClipWindows,
    feature: str = "video_embedding",
    batch_size: int = 16,
    num_workers: int = 0,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Runs the video network over every window of every item.

    Args:
        model: in eval mode, on its device.
        dataset: the items and their windows.
        feature: "video_embedding" (joint space) or "mixed_5c" (1024-d trunk feature).
        batch_size: items per batch (each has dataset.num_windows windows).
        num_workers: decoding processes.
        progress: show a tqdm bar.

    Returns:
        (features float32 [N, num_windows, D], ok bool [N]); rows of unreadable videos are
        computed on zeros and flagged False.
    """
    if feature not in FEATURES:
        raise ValueError(f"feature must be one of {FEATURES}, got {feature!r}")
    device = next(model.parameters()).device
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        shuffle=False,
        pin_memory=device.type == "cuda",
    )
    features: np.ndarray | None = None
    ok = np.zeros(len(dataset), dtype=bool)
    with tqdm(total=len(dataset), desc=f"{feature}", unit="clip", disable=not progress) as bar:
        for batch in loader:
            video = batch["video"].to(device, non_blocking=True)  # (B, W, 3, T, H, W)
            b, w = video.shape[:2]
            video = video.view(b * w, *video.shape[2:]).float().div_(255.0)
            out = model(video)[feature].view(b, w, -1).float().cpu().numpy()
            if features is None:
                features = np.zeros((len(dataset), w, out.shape[-1]), dtype=np.float32)
            index = batch["index"].numpy()
            features[index] = out
            ok[index] = batch["ok"].numpy()
            bar.update(b)
    if features is None:
        features = np.zeros((0, dataset.num_windows, 0), dtype=np.float32)
    return features, ok


@torch.inference_mode()
def embed_sentences(
    model: S3D,
    tokenizer: Tokenizer,
    sentences: Sequence[str],
    batch_size: int = 256,
    max_words: int | None = None,
) -> np.ndarray:
    """Text embeddings float32 [N, D] of `sentences` (not normalised)."""
    device = next(model.parameters()).device
    rows = []
    for i in range(0, len(sentences), batch_size):
        ids = tokenizer(sentences[i : i + batch_size], max_words=max_words).to(device)
        rows.append(model.text_module(ids)["text_embedding"].float().cpu().numpy())
    if not rows:
        return np.zeros((0, model.embedding_dim), dtype=np.float32)
    return np.concatenate(rows)
