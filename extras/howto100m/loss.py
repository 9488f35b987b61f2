"""Two-sided max-margin ranking loss with intra-video negative re-weighting (eq. 5.4-5.5), and
the reference code's variant of it (`weighting="reference"`) for runs that must match its logs."""

from __future__ import annotations

import torch
from torch import nn


def intra_video_weight(num_videos: int, pairs_per_video: int, hard_negative_rate: float) -> float:
    """alpha = p k (v - 1) / ((1 - p)(k - 1)), the weight of a same-video negative (eq. 5.5).

    With it, intra-video negatives carry a fraction p of the total negative weight whatever
    v and k are. When a batch has only one kind of negative (v = 1 or k = 1) no ratio can be
    fixed and the weight is 1.
    """
    v, k, p = num_videos, pairs_per_video, hard_negative_rate
    if v < 2 or k < 2:
        return 1.0
    return p * k * (v - 1) / ((1.0 - p) * (k - 1))


def negative_weights(
    num_videos: int,
    pairs_per_video: int,
    hard_negative_rate: float,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The alpha_ij matrix of eq. 5.5 for a batch of v videos x k contiguous pairs.

    Returns:
        [v k, v k]: alpha for same-video pairs, 1 for pairs of different videos, 0 on the
        diagonal (a pair is not its own negative).
    """
    v, k = num_videos, pairs_per_video
    video = torch.arange(v * k, device=device) // k  # (b,) video index of each pair
    same = video[:, None] == video[None, :]
    alpha = intra_video_weight(v, k, hard_negative_rate)
    weights = torch.where(
        same,
        torch.tensor(alpha, device=device, dtype=dtype),
        torch.tensor(1.0, device=device, dtype=dtype),
    )
    return weights.fill_diagonal_(0.0)


def reference_weights(
    num_videos: int,
    pairs_per_video: int,
    hard_negative_rate: float,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The reference code's mask (`MaxMarginRankingLoss.mm_mask`) for v videos x k pairs.

    With h the hard-negative rate and e = 1 - h it is kron(M, ones(k, k)) * v (1 - e), where
    M = (1 - a) I_v + a 1 1^T and a = e / ((v - 1)(1 - e)). So every pair of the same video,
    the positive on the diagonal included, weighs v h, and a pair of two different videos
    e v / (v - 1); each row sums to v k. (Written in that closed form, which is also defined
    at h = 0, where the reference's a divides by zero.)

    Returns:
        [v k, v k].

    Raises:
        ValueError: v < 2 (the reference's a divides by v - 1 = 0).
    """
    v, k, h = num_videos, pairs_per_video, hard_negative_rate
    if v < 2:
        raise ValueError("the reference weighting needs at least 2 videos per batch")
    video = torch.arange(v * k, device=device) // k
    same = video[:, None] == video[None, :]
    intra = torch.tensor(v * h, device=device, dtype=dtype)
    inter = torch.tensor((1.0 - h) * v / (v - 1), device=device, dtype=dtype)
    return torch.where(same, intra, inter)


WEIGHTINGS = ("thesis", "reference")


class MaxMarginRankingLoss(nn.Module):
    """Bidirectional max-margin ranking loss over every in-batch negative (thesis 5.4.1).

    For a similarity matrix x [b, b] whose positives are on the diagonal (x[i, j] = cosine
    of text i and video j) and pairs grouped by video (rows i k ... i k + k - 1 come from
    video i), the loss is

        sum_{i != j} alpha_ij [ relu(margin + x_ij - x_ii) + relu(margin + x_ij - x_jj) ]

    The first term ranks the videos for text i, the second the texts for video j. v and k
    are taken from each batch (v = b / n_pair), so batches of any size work, on any device.

    Args:
        margin: delta of eq. 5.4 (0.1 in the thesis).
        negative_weighting: re-weight negatives with alpha_ij of eq. 5.5; False gives the
            plain loss (all weights 1).
        hard_negative_rate: p, the share of the negative weight on same-video pairs, in [0, 1).
        reduction: "mean" divides the sum by sum_{i != j} alpha_ij (a weighted mean of the
            hinge pairs, independent of batch size); "sum" is eq. 5.4-5.5 as written.
        weighting: "thesis" (the default) is the loss above. "reference" is the reference
            code's (antoine77340/howto100m `loss.py`), for runs that must reproduce its logs:

                mean over all b^2 entries (i, j), the diagonal included, of
                w_ij [ relu(margin + x_ij - x_ii) + relu(margin + x_ij - x_jj) ]

            with w = `reference_weights` when negative_weighting is on and n_pair > 1, else
            w = 1. The diagonal entries add the constant 2 margin w_ii (no gradient).
            Needs reduction="mean" and, when weighted, at least 2 videos per batch.

    Call arguments:
        similarity: [b, b] float tensor.
        n_pair: k, the number of pairs per video; b must be a multiple of it.

    Returns:
        A scalar tensor.

    How the two weightings differ (v videos x k pairs, p = hard_negative_rate):
    - Weights: the reference's mask puts the positive pair inside the intra-video block, so
      relative to the other videos' pairs its same-video negatives weigh p (v - 1) / (1 - p),
      k / (k - 1) times less than eq. 5.5's alpha.
    - Normalisation: the reference averages over all b^2 entries, diagonal included (its
      weights sum to b^2), so it equals (1 - p / k) x its weighted mean over the negatives
      + (p / k) x 2 margin; unweighted, (1 - 1 / b) x the mean + 2 margin / b. "thesis"
      divides by the negatives' total weight, and "sum" does not divide at all.
    Either way the batch size is read from each batch, not fixed at construction.
    """

    def __init__(
        self,
        margin: float = 0.1,
        negative_weighting: bool = True,
        hard_negative_rate: float = 0.5,
        reduction: str = "mean",
        weighting: str = "thesis",
    ):
        super().__init__()
        if not 0.0 <= hard_negative_rate < 1.0:
            raise ValueError(f"hard_negative_rate must be in [0, 1), got {hard_negative_rate}")
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        if weighting == "reference" and reduction != "mean":
            raise ValueError("weighting='reference' is the reference's mean; use reduction='mean'")
        self.margin = margin
        self.negative_weighting = negative_weighting
        self.hard_negative_rate = hard_negative_rate
        self.reduction = reduction
        self.weighting = weighting

    def forward(self, similarity: torch.Tensor, n_pair: int = 1) -> torch.Tensor:
        b = similarity.shape[0]
        if similarity.ndim != 2 or similarity.shape[1] != b:
            raise ValueError(f"similarity must be square [b, b], got {tuple(similarity.shape)}")
        if n_pair < 1 or b % n_pair:
            raise ValueError(f"batch of {b} pairs is not a multiple of n_pair={n_pair}")
        positive = similarity.diagonal()
        text_to_video = torch.relu(self.margin + similarity - positive[:, None])  # row i
        video_to_text = torch.relu(self.margin + similarity - positive[None, :])  # column j
        if self.weighting == "reference":
            hinges = text_to_video + video_to_text  # (b, b), 2 margin on the diagonal
            if self.negative_weighting and n_pair > 1:
                hinges = hinges * reference_weights(
                    b // n_pair,
                    n_pair,
                    self.hard_negative_rate,
                    similarity.device,
                    similarity.dtype,
                )
            return hinges.mean()
        if self.negative_weighting:
            weights = negative_weights(
                b // n_pair, n_pair, self.hard_negative_rate, similarity.device, similarity.dtype
            )
        else:
            weights = 1.0 - torch.eye(b, device=similarity.device, dtype=similarity.dtype)
        total = (weights * (text_to_video + video_to_text)).sum()
        if self.reduction == "sum":
            return total
        return total / weights.sum().clamp_min(1e-12)
