"""Video-level baselines of the starter code: logistic regression and MoE on mean features."""

from __future__ import annotations

from typing import Any

import keras

from frame_models import options
from frame_models.models import common
from frame_models.registry import register_model


def video_model(
    num_classes: int,
    features: tuple[options.Feature, ...],
    classifier: str,
    model_name: str,
    /,
    *,
    input_batch_norm: bool = False,
    gating_after_moe: bool = False,
    gating_batch_norm: bool = True,
    num_mixtures: int = 2,
    moe_l2: float = 1e-8,
    l2_penalty: float = 1e-8,
    drop_rate: float = 0.0,
) -> keras.Model:
    """A video-level model: per-video L2 normalisation, concatenation, classifier.

    Args:
        num_classes: C.
        features: the input streams, checked by `frame_models.build`.
        classifier: "logistic" or "moe" (fixed by the registry name).
        model_name: the registry name, given to the keras.Model.
        input_batch_norm: batch norm on the normalised input vector.
        gating_after_moe: Context Gating on the probabilities.
        gating_batch_norm: batch norm on Context Gating logits instead of a bias.
        num_mixtures: MoE experts per class (starter code 2).
        moe_l2: L2 penalty of the MoE kernels (starter code 1e-8).
        l2_penalty: L2 penalty of the logistic kernel (starter code 1e-8).
        drop_rate: dropout on the video vector before the classifier, in training.

    Returns:
        The uncompiled model.
    """
    head = common.head_options(
        num_mixtures, moe_l2, l2_penalty, gating_after_moe, gating_batch_norm, drop_rate
    )

    # Layers and functional graph.
    inputs, streams = common.video_inputs(features)
    video = streams[0] if len(streams) == 1 else keras.layers.Concatenate(name="features")(streams)
    if options.boolean("input_batch_norm", input_batch_norm):
        video = keras.layers.BatchNormalization(name="input_bn")(video)
    probabilities = common.classifier_head(video, num_classes, classifier=classifier, **head)
    return keras.Model(inputs, probabilities, name=model_name)


@register_model(video_model, sample=None, exclude=common.MOE_ONLY)
def logistic(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """Logistic regression on mean_rgb + mean_audio (the starter's LogisticModel)."""
    return video_model(num_classes, features, "logistic", "logistic", **hparams)


@register_model(video_model, sample=None, exclude=common.LOGISTIC_ONLY)
def moe(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """Mixture of 2 experts on mean_rgb + mean_audio (the starter's MoeModel)."""
    return video_model(num_classes, features, "moe", "moe", **hparams)
