"""MIL-NCE loss (thesis eq. 6.1) in the released code's form and in the exact paper form."""

from __future__ import annotations

import torch
from torch import nn

VARIANTS = ("released", "paper")


def milnce_loss(
    video_embedding: torch.Tensor, text_embedding: torch.Tensor, variant: str = "released"
) -> torch.Tensor:
    """MIL-NCE loss of a batch; see `MILNCELoss`.

    Args:
        video_embedding: float [B, D].
        text_embedding: float [B*K, D]; rows i*K ... i*K+K-1 are the K candidates of clip i.
        variant: "released" or "paper".

    Returns:
        Scalar tensor, the mean over the B clips.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    b = video_embedding.shape[0]
    if b == 0 or text_embedding.shape[0] % b:
        raise ValueError(
            f"text rows ({text_embedding.shape[0]}) must be a positive multiple of video rows ({b})"
        )
    k = text_embedding.shape[0] // b
    scores = (video_embedding @ text_embedding.t()).view(b, b, k)  # (B, B, K): <v_i, t_jk>
    eye = torch.eye(b, dtype=torch.bool, device=scores.device)
    positives = scores[eye]  # (B, K): <v_i, t_ik>
    numerator = torch.logsumexp(positives, dim=1)  # (B,)
    row = scores.reshape(b, b * k)  # video i against every text
    column = scores.permute(1, 0, 2)  # (B, B, K): texts of clip i against every video
    if variant == "paper":
        # Each positive once: its column copy is already in the row half.
        column = column.masked_fill(eye[:, :, None], float("-inf"))
    denominator = torch.logsumexp(torch.cat([row, column.reshape(b, b * k)], dim=1), dim=1)
    return (denominator - numerator).mean()


class MILNCELoss(nn.Module):
    """Multiple-instance noise-contrastive loss between clips and their K candidate narrations.

    With s_ijk = <v_i, t_jk> (raw dot products, no normalisation or temperature), P_i = {s_iik}_k
    and symmetric negatives N_i = {s_ijk : j != i} u {s_jik : j != i} (other clips' narrations
    for video i, other videos for the narrations of clip i), the loss is the mean over i of

      paper (eq. 6.1):  -log( sum_P e^s / (sum_P e^s + sum_N e^s) )         minimum 0
      released:         -log( sum_P e^s / (2 sum_P e^s + sum_N e^s) )       minimum log 2

    The released code puts the row (video i vs all texts) and the column (texts of i vs all
    videos) into one softmax, so the positives count twice; its gradients are close to the
    paper's (author's answer in MIL-NCE_HowTo100M issue #4). Computed with logsumexp, so it is
    stable for any scale, and on whatever device the inputs are on; B may change per call.

    Args:
        variant: "released" (default, what the published weights were trained with) or "paper".

    Call arguments:
        video_embedding: float [B, D].
        text_embedding: float [B*K, D], the K candidates of clip i contiguous.

    Reference: Miech et al., CVPR 2020; thesis chapter 6, eq. 6.1.
    """

    def __init__(self, variant: str = "released"):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.variant = variant

    def forward(self, video_embedding: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        return milnce_loss(video_embedding, text_embedding, self.variant)

    def extra_repr(self) -> str:
        return f"variant={self.variant!r}"
