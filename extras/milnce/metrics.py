"""Retrieval metrics (R@K, median rank) over a square similarity matrix, ties pessimistic."""

from __future__ import annotations

import numpy as np


def ground_truth_ranks(similarity: np.ndarray) -> np.ndarray:
    """0-based rank of the diagonal entry in each row, ties counted against it.

    Rank i = number of other columns scoring at least as high as column i in row i. Equal
    scores therefore never help: a row of identical scores ranks its ground truth last. (The
    released metrics looked the diagonal value up by equality, so ties produced extra rows and
    inflated R@1; see extras_facts 4.1.)

    Args:
        similarity: float [N, N]; row = query, column = candidate, ground truth on the diagonal.

    Returns:
        int64 [N].
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    if similarity.ndim != 2 or similarity.shape[0] != similarity.shape[1]:
        raise ValueError(f"similarity must be square [N, N], got {similarity.shape}")
    diagonal = np.diag(similarity)[:, None]  # (N, 1)
    return (similarity >= diagonal).sum(axis=1).astype(np.int64) - 1


def retrieval_metrics(similarity: np.ndarray) -> dict[str, float]:
    """R@1, R@5, R@10 (fractions), median and mean rank (1-based) of row-wise retrieval.

    Args:
        similarity: float [N_query, N_candidate], square, ground truth on the diagonal; pass
            text @ video.T for text->video and its transpose for video->text.
    """
    ranks = ground_truth_ranks(similarity)
    return {
        "r1": float(np.mean(ranks < 1)),
        "r5": float(np.mean(ranks < 5)),
        "r10": float(np.mean(ranks < 10)),
        "median_rank": float(np.median(ranks) + 1),
        "mean_rank": float(np.mean(ranks) + 1),
        "num_queries": int(len(ranks)),
    }
