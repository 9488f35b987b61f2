"""S3D-G video network with the sentence encoder of the released MIL-NCE text-video model.

Reference: Miech et al., "End-to-End Learning of Visual Representations from Uncurated
Instructional Videos" (thesis chapter 6, Table 6.1); Xie et al., S3D-G (ECCV 2018).
"""

from __future__ import annotations

import torch
from torch import nn

from extras.milnce.text import SentenceEmbedding

# Inception widths (n0a, n1a, n1b, n2a, n2b, n3b) of every mixed block, in network order.
_INCEPTION = {
    "mixed_3b": (64, 96, 128, 16, 32, 32),
    "mixed_3c": (128, 128, 192, 32, 96, 64),
    "mixed_4b": (192, 96, 208, 16, 48, 64),
    "mixed_4c": (160, 112, 224, 24, 64, 64),
    "mixed_4d": (128, 128, 256, 24, 64, 64),
    "mixed_4e": (112, 144, 288, 32, 64, 64),
    "mixed_4f": (256, 160, 320, 32, 128, 128),
    "mixed_5b": (256, 160, 320, 32, 128, 128),
    "mixed_5c": (384, 192, 384, 48, 128, 128),
}


def _triple(value: int | tuple[int, int, int]) -> tuple[int, int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value, value)


def space_to_depth(video: torch.Tensor) -> torch.Tensor:
    """Folds every 2x2x2 block of pixels into channels.

    Args:
        video: [B, C, T, H, W] with T, H and W even.

    Returns:
        [B, 8C, T/2, H/2, W/2]; output channel ((dt*2 + dh)*2 + dw)*C + c holds input channel
        c at offset (dt, dh, dw) of its block, the layout the released weights expect.
    """
    b, c, t, h, w = video.shape
    x = video.reshape(b, c, t // 2, 2, h // 2, 2, w // 2, 2)  # (B, C, T', dt, H', dh, W', dw)
    x = x.permute(0, 3, 5, 7, 1, 2, 4, 6)  # (B, dt, dh, dw, C, T', H', W')
    return x.reshape(b, 8 * c, t // 2, h // 2, w // 2)


class STConv3D(nn.Module):
    """Conv3d (no bias) -> BatchNorm3d -> ReLU, optionally separated into spatial then temporal.

    Args:
        in_channels: input channels.
        out_channels: output channels of both convolutions.
        kernel_size: (kT, kH, kW) or an int.
        stride: int or triple.
        padding: int or triple.
        separable: if True and kT > 1, a [1, kH, kW] convolution (`conv1`, `bn1`) followed by a
            [kT, 1, 1] one (`conv2`, `bn2`), as in S3D.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int],
        stride: int | tuple[int, int, int] = 1,
        padding: int | tuple[int, int, int] = 0,
        separable: bool = False,
    ):
        super().__init__()
        kt, kh, kw = _triple(kernel_size)
        st, sh, sw = _triple(stride)
        pt, ph, pw = _triple(padding)
        self.separable = separable and kt > 1
        self.relu = nn.ReLU(inplace=True)
        if self.separable:
            self.conv1 = nn.Conv3d(
                in_channels, out_channels, (1, kh, kw), (1, sh, sw), (0, ph, pw), bias=False
            )
            self.bn1 = nn.BatchNorm3d(out_channels)
            self.conv2 = nn.Conv3d(
                out_channels, out_channels, (kt, 1, 1), (st, 1, 1), (pt, 0, 0), bias=False
            )
            self.bn2 = nn.BatchNorm3d(out_channels)
        else:
            self.conv1 = nn.Conv3d(
                in_channels, out_channels, (kt, kh, kw), (st, sh, sw), (pt, ph, pw), bias=False
            )
            self.bn1 = nn.BatchNorm3d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        if self.separable:
            x = self.relu(self.bn2(self.conv2(x)))
        return x


class SelfGating(nn.Module):
    """Feature gating of S3D-G: y = sigmoid(fc(mean_{T,H,W} x)) * x, one weight per channel.

    Input shape: [B, C, T, H, W]. Output shape: the same.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.fc = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.sigmoid(self.fc(x.mean(dim=(2, 3, 4))))  # (B, C)
        if x.is_contiguous(memory_format=torch.channels_last_3d) and not x.is_contiguous():
            # Channels innermost: broadcasting the gate along the last dimension of the
            # [B, T, H, W, C] view is a plain vectorised loop; the [B, C, 1, 1, 1] broadcast
            # over the strided view was 15% slower, forward and backward.
            gated = x.permute(0, 2, 3, 4, 1) * weights[:, None, None, None, :]
            return gated.permute(0, 4, 1, 2, 3)
        return x * weights[:, :, None, None, None]


class InceptionBlock(nn.Module):
    """S3D-G inception block: four branches (1x1, 1x1->3x3 sep, 1x1->3x3 sep, pool->1x1).

    Args:
        in_channels: input channels.
        n0a, n1a, n1b, n2a, n2b, n3b: branch widths; the output has n0a + n1b + n2b + n3b
            channels.
        use_gating: apply `SelfGating` to each branch output.
    """

    def __init__(
        self,
        in_channels: int,
        n0a: int,
        n1a: int,
        n1b: int,
        n2a: int,
        n2b: int,
        n3b: int,
        use_gating: bool = True,
    ):
        super().__init__()
        self.conv_b0 = STConv3D(in_channels, n0a, 1)
        self.conv_b1_a = STConv3D(in_channels, n1a, 1)
        self.conv_b1_b = STConv3D(n1a, n1b, 3, padding=1, separable=True)
        self.conv_b2_a = STConv3D(in_channels, n2a, 1)
        self.conv_b2_b = STConv3D(n2a, n2b, 3, padding=1, separable=True)
        self.maxpool_b3 = nn.MaxPool3d(3, stride=1, padding=1)
        self.conv_b3_b = STConv3D(in_channels, n3b, 1)
        self.use_gating = use_gating
        if use_gating:
            self.gating_b0 = SelfGating(n0a)
            self.gating_b1 = SelfGating(n1b)
            self.gating_b2 = SelfGating(n2b)
            self.gating_b3 = SelfGating(n3b)
        self.out_channels = n0a + n1b + n2b + n3b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [
            self.conv_b0(x),
            self.conv_b1_b(self.conv_b1_a(x)),
            self.conv_b2_b(self.conv_b2_a(x)),
            self.conv_b3_b(self.maxpool_b3(x)),
        ]
        if self.use_gating:
            gates = (self.gating_b0, self.gating_b1, self.gating_b2, self.gating_b3)
            branches = [gate(b) for gate, b in zip(gates, branches)]
        return torch.cat(branches, dim=1)


class MaxPool3dTFPadding(nn.Module):
    """Max pooling padded like the TensorFlow S3D it was ported from ('SAME', ceil mode).

    Each dimension gets max(k - s, 0) zeros, the smaller half before; zeros are safe for a max
    because the inputs follow a ReLU.
    """

    def __init__(self, kernel_size: tuple[int, int, int], stride: tuple[int, int, int]):
        super().__init__()
        pads: list[int] = []
        for k, s in reversed(list(zip(kernel_size, stride))):  # ConstantPad3d wants (W, H, T)
            total = max(k - s, 0)
            pads += [total // 2, total - total // 2]
        self.pad = nn.ConstantPad3d(tuple(pads), 0.0)
        self.pool = nn.MaxPool3d(kernel_size, stride, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.pad(x))


class S3D(nn.Module):
    """S3D-G video network and sentence encoder mapped into one joint embedding space.

    The video trunk is S3D-G up to `mixed_5c` (1024 channels), averaged over time and space,
    then a linear map to `embedding_dim`. Module names follow the released text-video model, so
    its state_dict (s3d_howto100m.pth) loads with `strict=True` when `space_to_depth=True`.
    The network is fully convolutional: any T, H, W work (T, H, W even with space-to-depth);
    the released model was trained on 32 frames at 200 px and works at 16-32 frames, 200-256 px.

    Args:
        space_to_depth: released variant: fold 2x2x2 pixel blocks into 24 channels, then a
            [2, 4, 4] first conv. False is the PyTorch training variant: [3, 7, 7] stride-2 conv.
        embedding_dim: joint embedding size (512).
        num_embeddings: rows of the word table (66250 in the released model; dictionary size
            + 1 otherwise, row 0 being padding).
        word_embedding_dim: word vector size (300, word2vec).
        text_hidden_dim: width of the per-word layer before the max (2048).
        use_gating: S3D-G self-gating after `conv_2c` and on every inception branch.
        mask_padding: exclude padding tokens from the sentence max; False matches the released
            checkpoint, whose padding row takes part in the max.
        weight_init: "default" (PyTorch's) or "kaiming_normal" (conv kaiming-normal fan-in,
            BatchNorm weight 1 and bias 0).

    Call arguments:
        video: float [B, 3, T, H, W] RGB in [0, 1] (no mean/std normalisation).

    Returns:
        dict with `video_embedding` [B, embedding_dim] (not normalised) and `mixed_5c`
        [B, 1024], the pooled trunk feature used for linear probes.

    `model.text_module(token_ids)` maps int64 [N, L] token ids to
    `{"text_embedding": [N, embedding_dim]}`; similarities are `text @ video.T`.

    The trunk runs channels-last (`memory_format`, [B, T, H, W, C] in memory, the convolution
    weights stored the same way): oneDNN's 3-D convolutions and max pools are faster in it on
    the CPU (max pooling up to 9x) and it is cuDNN's layout for tensor cores. The results are
    those of the standard layout to float rounding; `set_memory_format(torch.contiguous_format)`
    gives the plain network the bench compares against. The state_dict does not depend on it.
    """

    def __init__(
        self,
        space_to_depth: bool = True,
        embedding_dim: int = 512,
        num_embeddings: int = 66250,
        word_embedding_dim: int = 300,
        text_hidden_dim: int = 2048,
        use_gating: bool = True,
        mask_padding: bool = False,
        weight_init: str = "default",
    ):
        super().__init__()
        if weight_init not in ("default", "kaiming_normal"):
            raise ValueError(
                f"weight_init must be 'default' or 'kaiming_normal', got {weight_init!r}"
            )
        self.space_to_depth = space_to_depth
        self.embedding_dim = embedding_dim
        self.use_gating = use_gating
        # --- video trunk ---
        if space_to_depth:
            self.conv1 = STConv3D(24, 64, (2, 4, 4), stride=1, padding=(1, 2, 2))
        else:
            self.conv1 = STConv3D(3, 64, (3, 7, 7), stride=2, padding=(1, 3, 3))
        self.maxpool_2a = MaxPool3dTFPadding((1, 3, 3), (1, 2, 2))
        self.conv_2b = STConv3D(64, 64, 1)
        self.conv_2c = STConv3D(64, 192, 3, padding=1, separable=True)
        if use_gating:
            self.gating = SelfGating(192)
        self.maxpool_3a = MaxPool3dTFPadding((1, 3, 3), (1, 2, 2))
        channels = 192
        for name in ("mixed_3b", "mixed_3c"):
            channels = self._add_inception(name, channels)
        self.maxpool_4a = MaxPool3dTFPadding((3, 3, 3), (2, 2, 2))
        for name in ("mixed_4b", "mixed_4c", "mixed_4d", "mixed_4e", "mixed_4f"):
            channels = self._add_inception(name, channels)
        self.maxpool_5a = MaxPool3dTFPadding((2, 2, 2), (2, 2, 2))
        for name in ("mixed_5b", "mixed_5c"):
            channels = self._add_inception(name, channels)
        self.num_features = channels  # 1024
        self.fc = nn.Linear(channels, embedding_dim)
        # --- text branch ---
        self.text_module = SentenceEmbedding(
            num_embeddings=num_embeddings,
            word_embedding_dim=word_embedding_dim,
            hidden_dim=text_hidden_dim,
            embedding_dim=embedding_dim,
            mask_padding=mask_padding,
        )
        if weight_init == "kaiming_normal":
            self._kaiming_init()
        self.set_memory_format(torch.channels_last_3d)

    def set_memory_format(self, memory_format: torch.memory_format) -> S3D:
        """Lays out the convolution weights, and the trunk's activations from the next call, in
        `memory_format` (torch.channels_last_3d or torch.contiguous_format)."""
        self.memory_format = memory_format
        return self.to(memory_format=memory_format)

    def _add_inception(self, name: str, in_channels: int) -> int:
        block = InceptionBlock(in_channels, *_INCEPTION[name], use_gating=self.use_gating)
        self.add_module(name, block)
        return block.out_channels

    def _kaiming_init(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def trunk(self, video: torch.Tensor) -> torch.Tensor:
        """Video trunk up to `mixed_5c`: [B, 3, T, H, W] -> [B, 1024, T', H', W']."""
        x = space_to_depth(video) if self.space_to_depth else video  # (B, 24, T/2, H/2, W/2)
        x = self.conv1(x.contiguous(memory_format=self.memory_format))
        if self.space_to_depth:
            # The [2, 4, 4] conv over-pads by one; dropping the first row/column/frame
            # replicates TensorFlow's asymmetric 'SAME' padding of the original model.
            x = x[:, :, 1:, 1:, 1:]
        x = self.maxpool_2a(x)
        x = self.conv_2c(self.conv_2b(x))
        if self.use_gating:
            x = self.gating(x)
        x = self.maxpool_3a(x)
        x = self.mixed_3c(self.mixed_3b(x))
        x = self.maxpool_4a(x)
        for name in ("mixed_4b", "mixed_4c", "mixed_4d", "mixed_4e", "mixed_4f"):
            x = getattr(self, name)(x)
        x = self.maxpool_5a(x)
        return self.mixed_5c(self.mixed_5b(x))

    def forward(self, video: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.trunk(video).mean(dim=(2, 3, 4))  # (B, 1024)
        return {"video_embedding": self.fc(features), "mixed_5c": features}
