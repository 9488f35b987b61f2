"""A small Transformer encoder over the frames with attention pooling (beyond the thesis).

frames -> per-frame L2 -> early fusion -> [input BN] -> linear projection -> pre-LN encoder
blocks (padding masked) -> LayerNorm -> attention pooling -> [gating] -> dropout -> MoE ->
[Context Gating].
"""

from __future__ import annotations

from typing import Any

import keras

from frame_models import options
from frame_models.layers.attention_pooling import AttentionPooling, TransformerEncoderBlock
from frame_models.models import common
from frame_models.registry import register_model


def transformer_model(
    num_classes: int,
    features: tuple[options.Feature, ...],
    /,
    *,
    transformer_size: int = 512,
    num_heads: int = 8,
    transformer_layers: int = 2,
    ff_size: int = 1024,
    attention_dropout: float = 0.0,
    pooling_heads: int = 1,
    input_batch_norm: bool = True,
    drop_rate: float = 0.2,
    gating_after_pooling: bool = False,
    gating: str = "cg",
    gating_batch_norm: bool = True,
    gating_after_moe: bool = False,
    num_mixtures: int = 2,
    moe_l2: float = 1e-6,
) -> keras.Model:
    """A frame-level model: self-attention between the frames, then attention pooling.

    The frames of all streams are concatenated (early fusion: attention compares whole frames)
    and projected to `transformer_size`. There is no positional signal: the model is fed frames
    sampled with replacement, in no order, and frame order says little about a YouTube-8M
    video's topics, so the encoder and the pooling are functions of the set of frames.

    Args:
        num_classes: C.
        features: the input streams, checked by `frame_models.build`.
        transformer_size: D of the encoder (512).
        num_heads: attention heads per block (8); must divide transformer_size.
        transformer_layers: encoder blocks (2).
        ff_size: hidden size of each block's feed-forward network (1024).
        attention_dropout: dropout on the attention weights and the residual branches (0: the
            frame sampling and `drop_rate` regularise, and millions of training videos).
        pooling_heads: learned queries of the attention pooling; the video vector has
            pooling_heads * transformer_size dimensions (1).
        input_batch_norm: batch norm on the normalised frames (real frames' statistics), so
            the projection sees unit-scale inputs rather than 1/sqrt(D)-sized L2-normalised ones.
        drop_rate: dropout on the pooled video vector before the classifier (0.2).
        gating_after_pooling: gate the pooled video vector.
        gating: "cg" (Context Gating) or "glu" for that gate.
        gating_batch_norm: batch norm on Context Gating logits instead of a bias.
        gating_after_moe: Context Gating on the probabilities.
        num_mixtures: MoE experts per class.
        moe_l2: L2 penalty of the MoE kernels.

    Returns:
        The uncompiled model.
    """
    transformer_size = options.positive_int("transformer_size", transformer_size)
    num_heads = options.positive_int("num_heads", num_heads)
    if transformer_size % num_heads:
        raise ValueError(
            f"--num_heads must divide --transformer_size, received {num_heads!r} and "
            f"{transformer_size!r}"
        )
    transformer_layers = options.positive_int("transformer_layers", transformer_layers)
    ff_size = options.positive_int("ff_size", ff_size)
    attention_dropout = common.dropout_rate("attention_dropout", attention_dropout)
    pooling_heads = options.positive_int("pooling_heads", pooling_heads)
    input_batch_norm = options.boolean("input_batch_norm", input_batch_norm)
    gating = options.choice("gating", gating, common.GATINGS)
    head = common.head_options(
        num_mixtures, moe_l2, 0.0, gating_after_moe, gating_batch_norm, drop_rate
    )

    # Layers and functional graph.
    inputs, streams, mask = common.frame_inputs(features)
    (x,) = common.fuse_early(streams, "early")
    if input_batch_norm:
        x = keras.layers.BatchNormalization(name="input_bn")(x, mask=mask)
    x = keras.layers.Dense(transformer_size, name="projection")(x)
    for index in range(transformer_layers):
        block = TransformerEncoderBlock(
            transformer_size,
            num_heads,
            ff_size,
            dropout=attention_dropout,
            name=f"encoder_block_{index}",
        )
        x = block(x, mask=mask)
    # Pre-LN blocks leave the residual stream unnormalised; one LayerNorm closes the stack.
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="encoder_norm")(x)
    video = AttentionPooling(pooling_heads, name="attention_pooling")(x, mask=mask)
    if options.boolean("gating_after_pooling", gating_after_pooling):
        video = common.gate(video, gating, head["gating_batch_norm"], name="pooled")
    probabilities = common.classifier_head(video, num_classes, classifier="moe", **head)
    return keras.Model(inputs, probabilities, name="transformer")


# sample="random": the reader draws `sample_frames` frames with replacement, one fixed T per
# batch that keeps the O(T^2) attention cheap in training (32 frames cost ~1% of 300 frames'
# attention). Order is lost, which a model without positional signal does not miss.
@register_model(transformer_model, sample="random")
def transformer(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """Pre-LN Transformer encoder over sampled frames, attention pooling, MoE (not in the thesis)."""
    return transformer_model(num_classes, features, **hparams)
