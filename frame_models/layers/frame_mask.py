"""FrameMask: the (B, T) boolean mask of real frames from `num_frames`."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="y8m")
class FrameMask(keras.layers.Layer):
    """Boolean mask of the real (leading) frames of zero-padded videos.

    `mask[b, t] = t < max(num_frames[b], min_frames)`: readers put a video's frames first and pad
    after them, so rows at or beyond `num_frames` are padding. `num_frames` larger than T marks
    every row real.

    Args:
        min_frames: rows always marked real. The recurrent models use 1: cuDNN rejects sequences
            of length 0, so a video without frames reads one (zeroed) row instead.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: list `[num_frames, frames]`: `num_frames` (B,) integer, `frames` (B, T, D) any
            frame tensor, used only for T.

    Output shape:
        (B, T) boolean.
    """

    def __init__(self, min_frames: int = 0, **kwargs):
        super().__init__(**kwargs)
        if int(min_frames) < 0:
            raise ValueError(f"min_frames must be >= 0, received {min_frames!r}")
        self.min_frames = int(min_frames)

    def call(self, inputs):
        num_frames, frames = inputs
        steps = ops.arange(ops.shape(frames)[1], dtype="int32")  # (T,)
        counts = ops.cast(ops.reshape(num_frames, (-1, 1)), "int32")  # (B, 1)
        counts = ops.maximum(counts, self.min_frames)
        return ops.expand_dims(steps, 0) < counts  # (B, T)

    def compute_output_shape(self, inputs_shape):
        frames_shape = inputs_shape[1]
        return (frames_shape[0], frames_shape[1])

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(self.compute_output_shape([x.shape for x in inputs]), "bool")

    def get_config(self):
        config = super().get_config()
        config.update({"min_frames": self.min_frames})
        return config
