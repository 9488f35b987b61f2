"""Zero-shot text<->video retrieval over a clip set (YouCook2 / MSR-VTT protocol)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from extras.milnce.data import ClipWindows
from extras.milnce.inference import embed_sentences, extract_windows
from extras.milnce.metrics import retrieval_metrics
from extras.milnce.s3d import S3D
from extras.milnce.text import Tokenizer
from y8m.errors import UsageError


def evaluate_retrieval(
    model: S3D,
    tokenizer: Tokenizer,
    clips: pd.DataFrame,
    num_windows: int = 10,
    num_frames: int = 16,
    fps: float = 5.0,
    size: int = 224,
    max_words: int | None = 30,
    batch_size: int = 16,
    num_workers: int = 0,
    progress: bool = True,
) -> dict:
    """Text->video and video->text retrieval of every clip against the whole set.

    Each clip's video embedding is the mean of `num_windows` windows of `num_frames` frames at
    `fps` spread evenly over [start, end] (centre crop, `size` px); its text embedding is that
    of its caption. Similarity is the dot product; ranks count ties against the ground truth.
    Clips whose video cannot be read are left out (and counted).

    Args:
        model: in eval mode, on its device.
        tokenizer: the model's tokenizer.
        clips: DataFrame with path, start, end, text (see `data.read_clip_csv`).
        num_windows, num_frames, fps, size: video sampling.
        max_words: caption length (30 in the released YouCook2 evaluation).
        batch_size, num_workers, progress: inference settings.

    Returns:
        {"text_to_video": metrics, "video_to_text": metrics, "num_clips", "skipped"} with
        metrics as in `retrieval_metrics`.
    """
    dataset = ClipWindows(
        clips["path"].tolist(),
        clips["start"].tolist(),
        clips["end"].tolist(),
        num_windows=num_windows,
        num_frames=num_frames,
        fps=fps,
        size=size,
    )
    windows, ok = extract_windows(
        model, dataset, "video_embedding", batch_size, num_workers, progress
    )
    if not ok.any():
        raise UsageError(f"none of the {len(ok)} clip videos could be read: check the paths")
    video = windows.mean(axis=1)[ok]  # (N, D)
    text = embed_sentences(model, tokenizer, clips["text"].tolist(), max_words=max_words)[ok]
    similarity = text @ video.T  # (N_text, N_video)
    return {
        "text_to_video": retrieval_metrics(similarity),
        "video_to_text": retrieval_metrics(similarity.T),
        "num_clips": int(ok.sum()),
        "skipped": int((~ok).sum()),
        "skipped_paths": sorted(set(np.asarray(clips["path"])[~ok].tolist())),
    }
