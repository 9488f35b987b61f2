"""NetVLAD: soft-assignment VLAD pooling of a variable number of frames."""

from __future__ import annotations

import math

import keras
from keras import ops

from frame_models.layers.cluster_pooling import ClusterPooling
from frame_models.layers.ops import l2_normalize


@keras.saving.register_keras_serializable(package="y8m")
class NetVLAD(ClusterPooling):
    """Sum of residuals to learned cluster centres, weighted by soft assignments.

    `V[d, k] = sum_t a_k(x_t) (x_t[d] - c_k[d])` (thesis eq. 3.9), with the assignment of
    `ClusterPooling` and centres `c` (D, K) ~ N(0, 1/sqrt(D)) learned independently of the
    assignment weights. Then, as in the reference code (not the thesis text): intra-normalisation
    (L2 over d for each cluster), flattening d-major (index d*K + k) and a global L2
    normalisation. Padded frames (mask False) contribute nothing.

    Args:
        num_clusters: K.
        use_batch_norm: batch norm on the assignment logits instead of a bias.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: (B, T, D) frames.
        mask: optional (B, T) boolean, True on real frames.
        training: batch norm mode.

    Output shape:
        (B, D * K), unit L2 norm (zero for a video with no frames).

    Reference:
        Miech et al. 2017, eq. 3.9; Arandjelovic et al. 2016; yt8m_facts.md 6.2.
    """

    def build(self, input_shape):
        super().build(input_shape)
        feature_size = input_shape[-1]
        self.cluster_centers = self.add_weight(
            name="cluster_centers",
            shape=(feature_size, self.num_clusters),
            initializer=keras.initializers.RandomNormal(stddev=1.0 / math.sqrt(feature_size)),
        )

    def call(self, inputs, mask=None, training=None):
        x, a = self.assign(inputs, mask, training)  # (B, T, D), (B, T, K)
        a_sum = ops.sum(a, axis=1, keepdims=True)  # (B, 1, K)
        vlad = ops.einsum("btk,btd->bdk", a, x) - a_sum * self.cluster_centers  # (B, D, K)
        vlad = l2_normalize(vlad, axis=1)  # intra-normalisation
        vlad = ops.reshape(vlad, (-1, x.shape[-1] * self.num_clusters))  # (B, D*K)
        return l2_normalize(vlad, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1] * self.num_clusters)
