"""Retrieval recall R@1/5/10 and median rank over a whole test set, in bounded memory.

Pair i (text i, video i) is the ground truth. The similarity matrix is never held whole:
queries are scored in chunks of rows, so memory is chunk_size x N. Ties are counted
pessimistically: every other item scoring at least as high as the true one ranks ahead of
it (the reference code found the true item by value equality, so ties inflated recall).
"""

from __future__ import annotations

import numpy as np
import torch


def retrieval_ranks(
    queries: torch.Tensor, gallery: torch.Tensor, chunk_size: int = 1024
) -> np.ndarray:
    """0-based rank of the true item (gallery[i] for queries[i]) among all gallery items.

    Args:
        queries: [N, E] embeddings.
        gallery: [N, E] embeddings on the same device.
        chunk_size: query rows scored at once.

    Returns:
        int64 [N]: the number of other gallery items scoring >= the true one.
    """
    n = queries.shape[0]
    if gallery.shape[0] != n:
        raise ValueError(f"need as many queries as gallery items, got {n} and {gallery.shape[0]}")
    ranks = []
    with torch.no_grad():
        for lo in range(0, n, chunk_size):
            hi = min(lo + chunk_size, n)
            scores = queries[lo:hi] @ gallery.t()  # (c, N)
            rows = torch.arange(hi - lo, device=scores.device)
            true = scores[rows, rows + lo]  # (c,)
            # The true item itself is among the >= comparisons, hence the - 1.
            ranks.append(((scores >= true[:, None]).sum(dim=1) - 1).cpu())
    return torch.cat(ranks).numpy().astype(np.int64)


def recall_metrics(ranks: np.ndarray) -> dict[str, float]:
    """R@1, R@5, R@10 (fractions), median and mean rank (1-based) from 0-based ranks."""
    ranks = np.asarray(ranks)
    return {
        "r1": float(np.mean(ranks < 1)),
        "r5": float(np.mean(ranks < 5)),
        "r10": float(np.mean(ranks < 10)),
        "median_rank": float(np.median(ranks) + 1),
        "mean_rank": float(np.mean(ranks) + 1),
    }


def retrieval_metrics(
    text: torch.Tensor | np.ndarray,
    video: torch.Tensor | np.ndarray,
    chunk_size: int = 1024,
    device: str | torch.device = "cpu",
) -> dict:
    """Text-to-video and video-to-text retrieval metrics of aligned embeddings.

    Args:
        text: [N, E] text embeddings; row i describes video row i.
        video: [N, E] video embeddings.
        chunk_size: rows scored at once.
        device: where to compute.

    Returns:
        {"text_to_video": {...}, "video_to_text": {...}, "num_pairs": N} with the keys of
        `recall_metrics`.
    """
    text = torch.as_tensor(text, dtype=torch.float32, device=device)
    video = torch.as_tensor(video, dtype=torch.float32, device=device)
    return {
        "text_to_video": recall_metrics(retrieval_ranks(text, video, chunk_size)),
        "video_to_text": recall_metrics(retrieval_ranks(video, text, chunk_size)),
        "num_pairs": int(text.shape[0]),
    }


def format_metrics(metrics: dict) -> str:
    """Two lines in the thesis' table style (recalls in percent)."""
    lines = []
    for name in ("text_to_video", "video_to_text"):
        m = metrics[name]
        lines.append(
            f"{name:<14} R@1 {100 * m['r1']:5.1f}  R@5 {100 * m['r5']:5.1f}  "
            f"R@10 {100 * m['r10']:5.1f}  Median R {m['median_rank']:g}"
        )
    return "\n".join(lines)
