"""Weighted sums of sparse top-K score lists over the union of their classes, in chunks of videos.

A class missing from a model's list contributes 0 to the sum. Each chunk of videos is expanded
into one dense [chunk, C + 1] scratch array, reused across chunks, so memory stays at
O(chunk * C) plus the sparse inputs whatever the number of videos.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from y8m.metrics import top_k_per_row
from y8m.predictions import PAD_CLASS

DEFAULT_CHUNK_SIZE = 1024


def internal_lists(
    classes: np.ndarray, scores: np.ndarray, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-K lists in the form the scratch code indexes with.

    Padding (class -1) becomes the spare scratch column `num_classes` with score -inf, so it can
    be scattered and gathered like any class and never wins a top-k place. Arrays are returned
    as they are (no copy) when there is no padding.

    Args:
        classes: [V, K] int classes, -1 pads.
        scores: [V, K] float32 scores.
        num_classes: C.

    Returns:
        `(classes [V, K] int32, scores [V, K] float32)`.
    """
    classes = np.asarray(classes, np.int32)
    scores = np.asarray(scores, np.float32)
    pad = classes < 0
    if pad.any():
        classes = np.where(pad, np.int32(num_classes), classes)
        scores = np.where(pad, np.float32(-np.inf), scores)
    return classes, scores


def accumulate(
    scratch: np.ndarray,
    rows: np.ndarray,
    classes: np.ndarray,
    scores: np.ndarray,
    weight: float,
) -> None:
    """Adds `weight * scores` at `classes` into a scratch block whose empty cells hold -inf.

    Scores must be >= 0: `max(cell, 0)` turns an empty cell into 0 and leaves a filled one
    unchanged, so a cell becomes finite exactly when some model lists the class.

    Args:
        scratch: [n, C + 1] float32, -inf where no model listed the class yet.
        rows: [n, 1] row indices 0..n-1.
        classes, scores: [n, K] one model's lists for these rows (internal form).
        weight: > 0.
    """
    current = scratch[rows, classes]
    scratch[rows, classes] = np.maximum(current, 0) + np.float32(weight) * scores


def weighted_sum(
    lists: Sequence[tuple[np.ndarray, np.ndarray]],
    weights: Sequence[float],
    num_classes: int,
    top_k: int,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """Per video, the `top_k` classes of `sum_m weights[m] * scores_m` over the union of lists.

    Args:
        lists: per model `(classes [V, K_m], scores [V, K_m])` in internal form
            (`internal_lists`), rows aligned across models; scores >= 0.
        weights: one weight > 0 per model.
        num_classes: C.
        top_k: classes kept per video (clamped to C).
        chunk_size: videos per dense scratch block.

    Returns:
        `(classes [V, k] int32, scores [V, k] float32)`, rows sorted by score descending,
        padded with class -1 and score 0 where the union holds fewer than k classes.
    """
    if not lists:
        raise ValueError("no score lists to sum")
    num_videos = len(lists[0][0])
    k = min(int(top_k), num_classes)
    out_classes = np.full((num_videos, k), PAD_CLASS, np.int32)
    out_scores = np.zeros((num_videos, k), np.float32)
    scratch = np.empty((min(chunk_size, max(num_videos, 1)), num_classes + 1), np.float32)
    for start in range(0, num_videos, chunk_size):
        stop = min(start + chunk_size, num_videos)
        block = scratch[: stop - start]
        block.fill(-np.inf)
        rows = np.arange(stop - start)[:, None]
        for (classes, scores), weight in zip(lists, weights):
            accumulate(block, rows, classes[start:stop], scores[start:stop], weight)
        block[:, num_classes] = -np.inf  # the padding column never ranks
        index, values = top_k_per_row(block, k, sort=True)
        listed = values > -np.inf
        out_classes[start:stop] = np.where(listed, index, PAD_CLASS)
        out_scores[start:stop] = np.where(listed, values, 0.0)
    return out_classes, out_scores
