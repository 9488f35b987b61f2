"""JointL2Normalization: per-frame (or per-video) L2 normalisation over all feature streams."""

from __future__ import annotations

import keras
from keras import ops

from frame_models.layers.ops import l2_normalize, zero_padding


@keras.saving.register_keras_serializable(package="y8m")
class JointL2Normalization(keras.layers.Layer):
    """L2-normalises each row over the concatenation of all streams, then splits them back.

    The official binaries normalise the concatenated input (e.g. the 1152-d rgb+audio frame,
    or the video-level mean vector) before the model; doing it here lets a saved model take the
    reader's tensors as they are. With a frame mask, padded rows are set to exact zeros first
    (garbage in them, even NaN, never leaks) and stay zero.

    Call arguments:
        inputs: list of S tensors (B, T, D_s) (frame level) or (B, D_s) (video level).
        mask: optional (B, T) boolean, True on real frames (frame level only).

    Output shape:
        The list of S input shapes; each row of the concatenated output has norm 1 (or 0 for an
        all-zero or padded row).

    Reference:
        yt8m_facts.md 1.5 (`l2_normalize(video_matrix, axis=-1)` in the starter binaries).
    """

    def call(self, inputs, mask=None):
        if isinstance(mask, (list, tuple)):
            # Keras fills an unset mask with one entry per input; one frame mask serves all.
            mask = next((m for m in mask if m is not None), None)
        streams = [zero_padding(x, mask) for x in inputs]
        joint = l2_normalize(ops.concatenate(streams, axis=-1), axis=-1)
        bounds = []
        offset = 0
        for x in streams[:-1]:
            offset += x.shape[-1]
            bounds.append(offset)
        return list(ops.split(joint, bounds, axis=-1)) if bounds else [joint]

    def compute_mask(self, inputs, mask=None):
        # The mask is consumed here; downstream layers get it explicitly, never implicitly.
        return None

    def compute_output_shape(self, inputs_shape):
        return [tuple(s) for s in inputs_shape]
