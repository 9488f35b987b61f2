"""NetFV: learnable Fisher-vector-like pooling (first and second order cluster statistics)."""

from __future__ import annotations

import math

import keras
from keras import ops

from frame_models.layers.cluster_pooling import ClusterPooling
from frame_models.layers.ops import l2_normalize

# Added to the squared covariance weights so sigma stays strictly positive (reference 6.3).
SIGMA_FLOOR = 1e-6
# WILLOW's fv_coupling_factor: coupled centres are this multiple of the assignment weights.
COUPLING_FACTOR = 0.01


@keras.saving.register_keras_serializable(package="y8m")
class NetFV(ClusterPooling):
    """First- and second-order statistics of frames around learned centres, per cluster.

    With assignments `a` from `ClusterPooling`, centres `c` (D, K) and `sigma = w^2 + 1e-6`
    from covariance weights `w` (D, K) ~ N(1, 1/sqrt(D)) (squared so it stays positive, thesis
    3.4.2):

        FV1[d, k] = sum_t a_k(x_t) (x_t[d] - c_k[d]) / sigma_k[d]                   (eq. 3.11)
        FV2[d, k] = sum_t a_k(x_t) ((x_t[d] - c_k[d])^2 / sigma_k[d]^2 - 1)          (eq. 3.12)

    FV1 is intra-normalised (L2 over d per cluster), flattened d-major and L2-normalised; FV2 is
    flattened and L2-normalised (no intra-normalisation, as in the reference code). Output is
    `concat([FV1, FV2])`. Padded frames contribute nothing.

    The centres are free weights ~ N(0, 1/sqrt(D)) (the default, and what layers saved before
    the option existed hold), or with `couple_weights` WILLOW's default coupling to the
    assignment weights, `c = coupling_factor * cluster_weights`, which saves D*K weights.

    Args:
        num_clusters: K.
        use_batch_norm: batch norm on the assignment logits instead of a bias.
        couple_weights: centres tied to the assignment weights instead of free.
        coupling_factor: the tie's factor (WILLOW's `fv_coupling_factor`, 0.01).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: (B, T, D) frames.
        mask: optional (B, T) boolean, True on real frames.
        training: batch norm mode.

    Output shape:
        (B, 2 * D * K); each half has unit L2 norm (zero for a video with no frames).

    Reference:
        Miech et al. 2017, eq. 3.11-3.12; yt8m_facts.md 6.3; winners_facts.md 4 (coupling).
    """

    def __init__(
        self,
        num_clusters: int,
        use_batch_norm: bool = True,
        couple_weights: bool = False,
        coupling_factor: float = COUPLING_FACTOR,
        **kwargs,
    ):
        super().__init__(num_clusters, use_batch_norm=use_batch_norm, **kwargs)
        self.couple_weights = bool(couple_weights)
        self.coupling_factor = float(coupling_factor)

    def build(self, input_shape):
        super().build(input_shape)
        feature_size = input_shape[-1]
        stddev = 1.0 / math.sqrt(feature_size)
        if self.couple_weights:
            self.cluster_centers = None
        else:
            self.cluster_centers = self.add_weight(
                name="cluster_centers",
                shape=(feature_size, self.num_clusters),
                initializer=keras.initializers.RandomNormal(stddev=stddev),
            )
        self.covariance_weights = self.add_weight(
            name="covariance_weights",
            shape=(feature_size, self.num_clusters),
            initializer=keras.initializers.RandomNormal(mean=1.0, stddev=stddev),
        )

    def call(self, inputs, mask=None, training=None):
        x, a = self.assign(inputs, mask, training)  # (B, T, D), (B, T, K)
        flat_size = x.shape[-1] * self.num_clusters
        sigma = ops.square(self.covariance_weights) + SIGMA_FLOOR  # (D, K)
        if self.couple_weights:
            centers = self.coupling_factor * self.cluster_weights  # (D, K)
        else:
            centers = self.cluster_centers  # (D, K)
        a_sum = ops.sum(a, axis=1, keepdims=True)  # (B, 1, K)
        ax = ops.einsum("btk,btd->bdk", a, x)  # (B, D, K)
        ax2 = ops.einsum("btk,btd->bdk", a, ops.square(x))  # (B, D, K)

        fv1 = (ax - a_sum * centers) / sigma
        fv1 = l2_normalize(fv1, axis=1)  # intra-normalisation
        fv1 = l2_normalize(ops.reshape(fv1, (-1, flat_size)), axis=-1)

        # sum_t a (x - c)^2 expanded so the (B, T, D, K) tensor is never formed.
        fv2 = (ax2 + a_sum * ops.square(centers) - 2.0 * centers * ax) / ops.square(sigma) - a_sum
        fv2 = l2_normalize(ops.reshape(fv2, (-1, flat_size)), axis=-1)
        return ops.concatenate([fv1, fv2], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2 * input_shape[-1] * self.num_clusters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"couple_weights": self.couple_weights, "coupling_factor": self.coupling_factor}
        )
        return config
