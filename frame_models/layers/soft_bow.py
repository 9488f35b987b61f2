"""SoftBoW: differentiable bag-of-visual-words (sum of soft cluster assignments)."""

from __future__ import annotations

import keras
from keras import ops

from frame_models.layers.cluster_pooling import ClusterPooling
from frame_models.layers.ops import l2_normalize


@keras.saving.register_keras_serializable(package="y8m")
class SoftBoW(ClusterPooling):
    """Soft bag-of-words: `BOW[k] = sum_t a_k(x_t)` (thesis eq. 3.10), then L2-normalised.

    The thesis calls it BoW, the reference code Soft-DBoW. Compact (K values per video) but
    needs many clusters. Padded frames contribute nothing.

    Args:
        num_clusters: K.
        use_batch_norm: batch norm on the assignment logits instead of a bias.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: (B, T, D) frames.
        mask: optional (B, T) boolean, True on real frames.
        training: batch norm mode.

    Output shape:
        (B, K), unit L2 norm (zero for a video with no frames).

    Reference:
        Miech et al. 2017, eq. 3.10; yt8m_facts.md 6.4.
    """

    def call(self, inputs, mask=None, training=None):
        _, a = self.assign(inputs, mask, training)  # (B, T, K)
        return l2_normalize(ops.sum(a, axis=1), axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_clusters)
