"""The HowTo100M text-video joint embedding (thesis eq. 5.1-5.3).

Module and parameter names follow the reference implementation, so its state_dict
(`text_pooling`, `GU_text`, `GU_video`; 20 keys) loads strictly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ContextGating(nn.Module):
    """Context gating: y = x * sigmoid(W x + b) (thesis eq. 3.1, reused in eq. 5.2-5.3).

    Args:
        dim: D, the feature size.
        add_batch_norm: apply `batch_norm` to W x + b before the sigmoid. The reference
            always creates the BatchNorm1d (its keys are in every checkpoint) but never uses
            it; when unused its parameters are frozen so DDP does not wait for their gradients.

    Input shape: [N, D]. Output shape: [N, D].
    """

    def __init__(self, dim: int, add_batch_norm: bool = False):
        super().__init__()
        self.dim = dim
        self.add_batch_norm = add_batch_norm
        self.fc = nn.Linear(dim, dim)
        self.batch_norm = nn.BatchNorm1d(dim)
        if not add_batch_norm:
            self.batch_norm.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gates = self.fc(x)
        if self.add_batch_norm:
            gates = self.batch_norm(gates)
        return x * torch.sigmoid(gates)


class GatedEmbeddingUnit(nn.Module):
    """Linear layer, context gating, then L2 normalisation (thesis eq. 5.2-5.3).

    Args:
        input_dim: input feature size.
        output_dim: E, the joint embedding size.

    Input shape: [N, input_dim]. Output shape: [N, E], unit L2 norm per row.
    """

    def __init__(self, input_dim: int, output_dim: int):
        super().__init__()
        self.fc = nn.Linear(input_dim, output_dim)
        self.cg = ContextGating(output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.cg(self.fc(x)), dim=1)


class SentenceMaxpool(nn.Module):
    """Per-word linear layer and ReLU, then max over the words of a sentence.

    Args:
        word_dim: word-vector size (300 for GoogleNews).
        output_dim: S, the sentence feature size.
        mask_padding: ignore all-zero word rows. The reference does not, so its padded rows
            contribute relu(bias); keep False to reproduce a reference checkpoint's outputs.
            A sentence with no word then gives a zero vector.

    Input shape: [N, W, word_dim]. Output shape: [N, S].
    """

    def __init__(self, word_dim: int, output_dim: int, mask_padding: bool = False):
        super().__init__()
        self.mask_padding = mask_padding
        self.fc = nn.Linear(word_dim, output_dim)

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        hidden = self.fc(words)  # (N, W, S)
        if self.mask_padding:
            real = (words != 0).any(dim=-1, keepdim=True)  # (N, W, 1)
            hidden = hidden.masked_fill(~real, float("-inf"))
        # ReLU and max commute (both monotone), so ReLU runs on (N, S), not on (N, W, S).
        return F.relu(hidden.amax(dim=1))


class Net(nn.Module):
    """Text-video joint embedding returning the cosine similarity of every text to every video.

    Args:
        embd_dim: E, the joint embedding size (4096 in the thesis, 6144 for the released model).
        video_dim: size of the clip feature (4096 = 2-D + 3-D streams).
        we_dim: word-vector size.
        sentence_dim: size of the pooled sentence feature; <= 0 means `embd_dim`.
        mask_padding: see `SentenceMaxpool`.

    Call arguments:
        video: [N_video, video_dim] clip features.
        text: [N_text, W, we_dim] zero-padded word vectors.

    Output shape: [N_text, N_video] cosine similarities.

    Reference: Miech et al., HowTo100M, ICCV 2019; thesis eq. 5.1-5.3.
    """

    def __init__(
        self,
        embd_dim: int = 4096,
        video_dim: int = 4096,
        we_dim: int = 300,
        sentence_dim: int = -1,
        mask_padding: bool = False,
    ):
        super().__init__()
        self.embd_dim = embd_dim
        self.video_dim = video_dim
        self.we_dim = we_dim
        self.sentence_dim = sentence_dim
        self.mask_padding = mask_padding
        pooled_dim = embd_dim if sentence_dim <= 0 else sentence_dim
        self.text_pooling = SentenceMaxpool(we_dim, pooled_dim, mask_padding=mask_padding)
        self.GU_text = GatedEmbeddingUnit(pooled_dim, embd_dim)
        self.GU_video = GatedEmbeddingUnit(video_dim, embd_dim)

    def config(self) -> dict:
        """The constructor arguments; saved in every checkpoint."""
        return {
            "embd_dim": self.embd_dim,
            "video_dim": self.video_dim,
            "we_dim": self.we_dim,
            "sentence_dim": self.sentence_dim,
            "mask_padding": self.mask_padding,
        }

    def embed_text(self, text: torch.Tensor) -> torch.Tensor:
        """[N, W, we_dim] word vectors -> [N, E] unit embeddings."""
        return self.GU_text(self.text_pooling(text))

    def embed_video(self, video: torch.Tensor) -> torch.Tensor:
        """[N, video_dim] clip features -> [N, E] unit embeddings."""
        return self.GU_video(video)

    def forward(self, video: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.embed_text(text) @ self.embed_video(video).t()
