"""NetRVLAD: residual-less NetVLAD (soft-assignment-weighted sums of the frames)."""

from __future__ import annotations

import keras
from keras import ops

from frame_models.layers.cluster_pooling import ClusterPooling
from frame_models.layers.ops import l2_normalize


@keras.saving.register_keras_serializable(package="y8m")
class NetRVLAD(ClusterPooling):
    """NetVLAD without cluster centres: `R[d, k] = sum_t a_k(x_t) x_t[d]` (thesis eq. 3.13).

    Same normalisation as `NetVLAD`: intra-normalisation over d per cluster, d-major flattening,
    global L2. About half NetVLAD's parameters and operations. Padded frames contribute nothing.

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
        Miech et al. 2017, eq. 3.13; yt8m_facts.md 6.2.
    """

    def call(self, inputs, mask=None, training=None):
        x, a = self.assign(inputs, mask, training)  # (B, T, D), (B, T, K)
        rvlad = ops.einsum("btk,btd->bdk", a, x)  # (B, D, K)
        rvlad = l2_normalize(rvlad, axis=1)  # intra-normalisation
        rvlad = ops.reshape(rvlad, (-1, x.shape[-1] * self.num_clusters))  # (B, D*K)
        return l2_normalize(rvlad, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1] * self.num_clusters)
