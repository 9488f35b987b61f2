"""Video-level baselines of the starter code: logistic regression and MoE on mean features."""

from __future__ import annotations

from typing import Any

import keras

from frame_models import options
from frame_models.models import common
from frame_models.registry import register_model
from y8m.data import specs


def video_model(
    num_classes: int,
    classifier: str,
    model_name: str,
    /,
    *,
    feature_names: Any = None,
    feature_sizes: Any = None,
    input_batch_norm: bool = False,
    gating_after_moe: bool = False,
    gating_batch_norm: bool = True,
    num_mixtures: int = 2,
    moe_l2: float = 1e-8,
    l2_penalty: float = 1e-8,
) -> keras.Model:
    """A video-level model: per-video L2 normalisation, concatenation, classifier.

    Args:
        num_classes: C.
        classifier: "logistic" or "moe" (fixed by the registry name).
        model_name: the registry name, given to the keras.Model.
        feature_names: video features, list or comma string (default mean_rgb, mean_audio).
        feature_sizes: their sizes (default: the known size of each name).
        input_batch_norm: batch norm on the normalised input vector.
        gating_after_moe: Context Gating on the probabilities.
        gating_batch_norm: batch norm on Context Gating logits instead of a bias.
        num_mixtures: MoE experts per class (starter code 2).
        moe_l2: L2 penalty of the MoE kernels (starter code 1e-8).
        l2_penalty: L2 penalty of the logistic kernel (starter code 1e-8).

    Returns:
        The uncompiled model.
    """
    features = options.features(feature_names, feature_sizes, specs.VIDEO_FEATURES)
    head = common.head_options(
        num_mixtures, moe_l2, l2_penalty, gating_after_moe, gating_batch_norm
    )

    # Layers and functional graph.
    inputs, streams = common.video_inputs(features)
    video = streams[0] if len(streams) == 1 else keras.layers.Concatenate(name="features")(streams)
    if options.boolean("input_batch_norm", input_batch_norm):
        video = keras.layers.BatchNormalization(name="input_bn")(video)
    probabilities = common.classifier_head(video, num_classes, classifier=classifier, **head)
    return keras.Model(inputs, probabilities, name=model_name)


@register_model(video_model, sample=None)
def logistic(num_classes: int, **overrides: Any) -> keras.Model:
    """Logistic regression on mean_rgb + mean_audio (the starter's LogisticModel)."""
    return video_model(num_classes, "logistic", "logistic", **overrides)


@register_model(video_model, sample=None)
def moe(num_classes: int, **overrides: Any) -> keras.Model:
    """Mixture of 2 experts on mean_rgb + mean_audio (the starter's MoeModel)."""
    return video_model(num_classes, "moe", "moe", **overrides)
