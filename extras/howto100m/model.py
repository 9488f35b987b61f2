"""The HowTo100M text-video joint embedding (thesis eq. 5.1-5.3).

Module and parameter names follow the reference implementation, so its state_dict
(`text_pooling`, `GU_text`, `GU_video`; 20 keys) loads strictly.
"""

from __future__ import annotations

import math

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

    c = max_w relu(W x_w + b), taken over all W slots. A padded slot is an all-zero word
    vector, so it contributes relu(b): a caption with padding never pools below relu(b), and
    an all-padding caption pools to exactly relu(b).

    Args:
        word_dim: word-vector size (300 for GoogleNews).
        output_dim: S, the sentence feature size.
        mask_padding: ignore all-zero word rows. The reference does not, so its padded rows
            contribute relu(bias); keep False to reproduce a reference checkpoint's outputs.
            A sentence with no word then gives a zero vector.
        use_packing: project only the real (non-zero) word vectors, packed into one matrix
            with a single padded slot whose b joins the max of every caption with padding.
            Same values and gradients as projecting every slot (captions average ~4 real
            words of 20 slots, so it projects a fifth of the rows); False projects every
            slot. A speed setting, not part of the architecture: checkpoints do not record it.

    Input shape: [N, W, word_dim]. Output shape: [N, S].

    At an exact float tie the gradient goes to one slot, the first maximal one, as in the
    reference (`torch.max`). The packed path lets a real word win a tie with padding, which is
    the same when the padding follows the words, as the loaders pad.
    """

    def __init__(
        self, word_dim: int, output_dim: int, mask_padding: bool = False, use_packing: bool = True
    ):
        super().__init__()
        self.mask_padding = mask_padding
        self.use_packing = use_packing
        self.fc = nn.Linear(word_dim, output_dim)

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        if self.use_packing and words.shape[0] and words.shape[1]:
            return self.packed_forward(words)
        return self.dense_forward(words)

    def dense_forward(self, words: torch.Tensor) -> torch.Tensor:
        """Projects every slot, padded ones included ([N, W, word_dim] -> [N, S])."""
        hidden = self.fc(words)  # (N, W, S)
        if self.mask_padding:
            real = (words != 0).any(dim=-1, keepdim=True)  # (N, W, 1)
            hidden = hidden.masked_fill(~real, float("-inf"))
        # ReLU and max commute (both monotone), so ReLU runs on (N, S), not on (N, W, S).
        # max (not amax) sends a tie's gradient to one slot, like the reference, and its
        # backward scatters by index instead of comparing the whole (N, W, S) tensor.
        return F.relu(hidden.max(dim=1).values)

    def packed_forward(self, words: torch.Tensor) -> torch.Tensor:
        """Projects only the real words ([N, W, word_dim] -> [N, S]); equals `dense_forward`."""
        packed, order, groups = _pack_by_length(words)
        # One padded (zero) slot is projected too: the candidate b that every caption with
        # padding has, through the same layer as on the dense path (so W gets its zero grad).
        hidden = self.fc(torch.cat([packed, packed.new_zeros(1, packed.shape[1])]))  # (R + 1, S)
        pooled = _SegmentMax.apply(hidden, groups, words.shape[1], order, self.mask_padding)
        return F.relu(pooled)


class _SegmentMax(torch.autograd.Function):
    """Max over each caption's projected words and, if it has padding, the padded slot's.

    Forward: hidden [R + 1, S] (the real words grouped by caption length as `_pack_by_length`
    gives them, then the padded slot), groups {length: captions}, W slots, order [N] and
    mask_padding -> [N, S] in the captions' order. Backward sends each output's gradient to
    the row that won, in one scatter, with no autograd graph per length group.
    """

    @staticmethod
    def forward(ctx, hidden, groups, slots, order, mask_padding):
        pad_row = hidden.shape[0] - 1
        padding = hidden[pad_row]
        if mask_padding:  # padding never wins; an empty caption pools to -inf (ReLU: 0)
            padding = torch.full_like(padding, -math.inf)
        size = (order.numel(), hidden.shape[1])
        values = hidden.new_empty(size)  # (N, S), in the captions' order
        winners = torch.empty(size, dtype=torch.long, device=hidden.device)  # rows of `hidden`
        start, done = 0, 0  # rows of `hidden` and captions (in length order) used so far
        for length, count in groups.items():
            captions = order[done : done + count]  # where this group's results go
            done += count
            if length == 0:
                values.index_copy_(0, captions, padding.expand(count, -1))
                winners.index_fill_(0, captions, pad_row)
                continue
            block = hidden[start : start + length * count].view(count, length, -1)
            best, arg = block.max(dim=1)  # (count, S): first maximal word, as torch.max
            row = arg.add_(start + length * torch.arange(count, device=hidden.device)[:, None])
            start += length * count
            if length < slots:
                # A real word wins a tie with the padding (on the dense path it comes first).
                lose = best < padding
                best = torch.where(lose, padding, best)
                row.masked_fill_(lose, pad_row)
            values.index_copy_(0, captions, best)
            winners.index_copy_(0, captions, row)
        ctx.save_for_backward(winners)
        ctx.num_rows = hidden.shape[0]
        return values

    @staticmethod
    def backward(ctx, grad):
        (winners,) = ctx.saved_tensors
        grad_hidden = grad.new_zeros(ctx.num_rows, grad.shape[1])
        # scatter_add: the padded slot's row collects the gradient of every caption it won.
        return grad_hidden.scatter_add_(0, winners, grad), None, None, None, None


def _pack_by_length(words: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The real (non-zero) word vectors, captions sorted by their number of real words.

    Args:
        words: [N, W, D] word vectors, padded slots all zero (anywhere in the caption).

    Returns:
        packed [R, D] (each caption's real words in slot order, the captions in `order`),
        order [N] int64 (a stable sort of the captions by length), and {length: captions}
        for the lengths present, ascending: the rows of one length are contiguous in `packed`.
    """
    n, slots, dim = words.shape
    real = (words != 0).any(dim=-1)  # (N, W)
    lengths = real.sum(dim=1)  # (N,)
    # One host read: the group sizes fix the split of the projected rows.
    counts = torch.bincount(lengths, minlength=slots + 1).tolist()
    groups = {length: count for length, count in enumerate(counts) if count}
    order = torch.argsort(lengths, stable=True)  # (N,)
    slot_ids = order[:, None] * slots + torch.arange(slots, device=words.device)  # (N, W)
    rows = slot_ids[real.index_select(0, order)]  # (R,) flat slot of each real word
    return words.reshape(n * slots, dim).index_select(0, rows), order, groups


class Net(nn.Module):
    """Text-video joint embedding returning the cosine similarity of every text to every video.

    Args:
        embd_dim: E, the joint embedding size (4096 in the thesis, 6144 for the released model).
        video_dim: size of the clip feature (4096 = 2-D + 3-D streams).
        we_dim: word-vector size.
        sentence_dim: size of the pooled sentence feature; <= 0 means `embd_dim`.
        mask_padding: see `SentenceMaxpool`.
        use_packing: see `SentenceMaxpool` (a speed setting; not in `config()`).

    Call arguments:
        video: [N_video, video_dim] clip features.
        text: [N_text, W, we_dim] zero-padded word vectors.
        pair_ids: optional int [N], when video and text are N pairs (N_text = N_video = N):
            pairs with the same id are the same clip and caption (training draws captions
            with replacement). Each distinct pair is then embedded once and its scores are
            copied to the repeats: the same [N, N] matrix (gradients of repeats add up on
            the one copy, as they would on the weights), with fewer rows through the units.

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
        use_packing: bool = True,
    ):
        super().__init__()
        self.embd_dim = embd_dim
        self.video_dim = video_dim
        self.we_dim = we_dim
        self.sentence_dim = sentence_dim
        self.mask_padding = mask_padding
        self.use_packing = use_packing
        pooled_dim = embd_dim if sentence_dim <= 0 else sentence_dim
        self.text_pooling = SentenceMaxpool(
            we_dim, pooled_dim, mask_padding=mask_padding, use_packing=use_packing
        )
        self.GU_text = GatedEmbeddingUnit(pooled_dim, embd_dim)
        self.GU_video = GatedEmbeddingUnit(video_dim, embd_dim)

    def config(self) -> dict:
        """The architecture's constructor arguments; saved in every checkpoint (`use_packing`
        changes no result, so it is left out and old checkpoints resume unchanged)."""
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

    def forward(
        self, video: torch.Tensor, text: torch.Tensor, pair_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        if pair_ids is not None:
            first, inverse = distinct_rows(pair_ids)
            if first.numel() < pair_ids.numel():
                video, text = video.index_select(0, first), text.index_select(0, first)
                scores = self.embed_text(text) @ self.embed_video(video).t()  # (U, U)
                return scores.index_select(0, inverse).index_select(1, inverse)  # (N, N)
        return self.embed_text(text) @ self.embed_video(video).t()


def distinct_rows(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The first row holding each distinct key, and where each row's key is among them.

    Args:
        keys: int [N].

    Returns:
        first int64 [U] (ascending), inverse int64 [N] with keys[first[inverse]] == keys.
    """
    distinct, inverse = torch.unique(keys, return_inverse=True)  # inverse: rank of each key
    rows = torch.arange(keys.numel(), device=keys.device)
    first = rows.new_full((distinct.numel(),), keys.numel())
    first.scatter_reduce_(0, inverse, rows, reduce="amin")
    # Keep the distinct rows in batch order: renumber the ranks by first appearance.
    first, order = first.sort()
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=keys.device)
    return first, rank[inverse]
