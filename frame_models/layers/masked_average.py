"""MaskedAverage: mean over the real frames of a padded video."""

from __future__ import annotations

import keras
from keras import ops

from frame_models.layers.ops import float_mask, zero_padding


@keras.saving.register_keras_serializable(package="y8m")
class MaskedAverage(keras.layers.Layer):
    """Average of the frames where the mask is True: `sum_t m_t x_t / max(sum_t m_t, 1)`.

    The starter code's FrameLevelLogisticModel divides the padded sum by `num_frames`; with the
    mask the padding can hold anything. A video with no real frame averages to zeros.

    Call arguments:
        inputs: (B, T, D) frames.
        mask: optional (B, T) boolean, True on real frames.

    Output shape:
        (B, D).
    """

    def call(self, inputs, mask=None):
        x = zero_padding(inputs, mask)
        weights = float_mask(mask, x)  # (B, T, 1)
        count = ops.maximum(ops.sum(weights, axis=1), 1.0)  # (B, 1)
        return ops.sum(x, axis=1) / count

    def compute_mask(self, inputs, mask=None):
        # The mask is consumed here; downstream layers get it explicitly, never implicitly.
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])
