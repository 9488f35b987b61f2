"""Average-pooling baselines of the thesis (Table 3.1) and the starter code.

frames -> per-frame L2 -> masked mean over real frames -> [gating] -> logistic or MoE
-> [Context Gating].
"""

from __future__ import annotations

from typing import Any

import keras

from frame_models import options
from frame_models.layers import MaskedAverage
from frame_models.models import common
from frame_models.registry import register_model


def average_model(
    num_classes: int,
    features: tuple[options.Feature, ...],
    classifier: str,
    model_name: str,
    /,
    *,
    gating_after_pooling: bool = False,
    gating: str = "cg",
    gating_batch_norm: bool = True,
    gating_after_moe: bool = False,
    num_mixtures: int = 2,
    moe_l2: float = 1e-6,
    l2_penalty: float = 1e-8,
    drop_rate: float = 0.0,
) -> keras.Model:
    """A frame-level model classifying the mean of the real frames.

    The mean of the concatenated streams equals the concatenation of their means, so early and
    late fusion coincide and `fusion` does not apply.

    Args:
        num_classes: C.
        features: the input streams, checked by `frame_models.build`.
        classifier: "logistic" or "moe" (fixed by the registry name).
        model_name: the registry name, given to the keras.Model.
        gating_after_pooling: gate the averaged vector.
        gating: "cg" (Context Gating) or "glu" for that gate.
        gating_batch_norm: batch norm on Context Gating logits instead of a bias.
        gating_after_moe: Context Gating on the probabilities (also after the logistic).
        num_mixtures: MoE experts per class.
        moe_l2: L2 penalty of the MoE kernels.
        l2_penalty: L2 penalty of the logistic kernel (starter code 1e-8).
        drop_rate: dropout on the video vector before the classifier, in training.

    Returns:
        The uncompiled model.
    """
    gating = options.choice("gating", gating, common.GATINGS)
    head = common.head_options(
        num_mixtures, moe_l2, l2_penalty, gating_after_moe, gating_batch_norm, drop_rate
    )

    # Layers and functional graph.
    inputs, streams, mask = common.frame_inputs(features)
    means = [
        MaskedAverage(name=f"{f.name}_average")(x, mask=mask) for f, x in zip(features, streams)
    ]
    video = means[0] if len(means) == 1 else keras.layers.Concatenate(name="averages")(means)
    if options.boolean("gating_after_pooling", gating_after_pooling):
        video = common.gate(video, gating, head["gating_batch_norm"], name="pooled")
    probabilities = common.classifier_head(video, num_classes, classifier=classifier, **head)
    return keras.Model(inputs, probabilities, name=model_name)


@register_model(average_model, sample="ordered", exclude=common.MOE_ONLY)
def average_logistic(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """Mean of the frames + logistic regression (Table 3.1: 71.4% GAP; the starter's baseline)."""
    return average_model(num_classes, features, "logistic", "average_logistic", **hparams)


@register_model(average_model, sample="ordered", exclude=common.LOGISTIC_ONLY)
def average_moe_cg(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """Mean of the frames + MoE + Context Gating (Table 3.1: 74.1% GAP)."""
    return average_model(
        num_classes, features, "moe", "average_moe_cg", **{"gating_after_moe": True, **hparams}
    )
