"""Deep bag-of-frames pooling: WILLOW's SoftDBoF and GatedDBoF, and the starter code's DBoF."""

from __future__ import annotations

import math

import keras
from keras import ops

from frame_models.layers.cluster_pooling import ClusterPooling
from frame_models.layers.ops import float_mask, l2_normalize, zero_padding

FRAME_POOLINGS = ("max", "average")


def masked_max(x, mask):
    """Maximum over the real frames of `x`; zeros for a video without frames.

    Padding is set to -inf before the maximum, so it cannot win even where every real value is
    negative, and NaN garbage in it is gone. The gradient reaches the winning real frames only.

    Args:
        x: (B, T, n) values.
        mask: (B, T) boolean, True on real frames, or None (all real).

    Returns:
        (B, n) maxima, of `x`'s dtype.
    """
    if mask is None:
        return ops.max(x, axis=1)
    real = ops.expand_dims(ops.cast(mask, "bool"), -1)  # (B, T, 1)
    peak = ops.max(ops.where(real, x, ops.full_like(x, float("-inf"))), axis=1)  # (B, n)
    return ops.where(ops.any(real, axis=1), peak, ops.zeros_like(peak))


@keras.saving.register_keras_serializable(package="y8m")
class SoftDBoF(ClusterPooling):
    """Soft deep bag of frames: summed soft assignments, optionally with their maximum.

    With the assignments `a` of `ClusterPooling`: `s = L2(sum_t a_t)` (B, K), which is `SoftBoW`;
    with `max_pool` the output is `concat([s, L2(max_t a_t)])` (B, 2K), the maximum taken over
    real frames only. Padded frames (mask False) change nothing.

    Args:
        num_clusters: K.
        use_batch_norm: batch norm on the assignment logits instead of a bias.
        max_pool: also output the L2-normalised maximum of the assignments over frames.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: (B, T, D) frames.
        mask: optional (B, T) boolean, True on real frames.
        training: batch norm mode.

    Output shape:
        (B, K), or (B, 2K) with `max_pool`; each part has unit L2 norm (zero for a video with
        no frames).

    Reference:
        WILLOW `SoftDBoF` (`--softdbof_maxpool`); winners_facts.md 4.
    """

    def __init__(
        self, num_clusters: int, use_batch_norm: bool = True, max_pool: bool = False, **kwargs
    ):
        super().__init__(num_clusters, use_batch_norm=use_batch_norm, **kwargs)
        self.max_pool = bool(max_pool)

    def call(self, inputs, mask=None, training=None):
        _, a = self.assign(inputs, mask, training)  # (B, T, K)
        pooled = l2_normalize(ops.sum(a, axis=1), axis=-1)  # (B, K)
        if not self.max_pool:
            return pooled
        peak = l2_normalize(masked_max(a, mask), axis=-1)  # (B, K)
        return ops.concatenate([pooled, peak], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], (2 if self.max_pool else 1) * self.num_clusters)

    def get_config(self):
        config = super().get_config()
        config.update({"max_pool": self.max_pool})
        return config


@keras.saving.register_keras_serializable(package="y8m")
class GatedDBoF(ClusterPooling):
    """Gated deep bag of frames: summed soft assignments gated by their maximum over frames.

    With the assignments `a` of `ClusterPooling` (B, T, K):

        s = sum_t a_t                                      (B, K), not normalised
        m = L2(max_t a_t)                                  (B, K), real frames only
        g = sigmoid(BN(m R W))                             R (K, D), W (D, K)
        output = L2(g * s)

    The gate is a rank-D bilinear map of the max-pooled assignments (D the frame size), each
    factor ~ N(0, 1/sqrt(D)) as in the reference; without batch norm a zero-initialised bias
    replaces the gate's BN (the reference's non-BN branch does not run). Padded frames (mask
    False) change nothing.

    Args:
        num_clusters: K.
        use_batch_norm: batch norm on the assignment logits and on the gate logits instead of
            biases.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: (B, T, D) frames.
        mask: optional (B, T) boolean, True on real frames.
        training: batch norm mode.

    Output shape:
        (B, K), unit L2 norm (zero for a video with no frames).

    Reference:
        WILLOW `GatedDBoF` (the video branch of `GatedDbofModelLF`); winners_facts.md 4.
    """

    def __init__(self, num_clusters: int, use_batch_norm: bool = True, **kwargs):
        super().__init__(num_clusters, use_batch_norm=use_batch_norm, **kwargs)
        self.gate_bn = (
            keras.layers.BatchNormalization(name="gate_bn", dtype=self.dtype_policy)
            if self.use_batch_norm
            else None
        )

    def build(self, input_shape):
        super().build(input_shape)
        feature_size = input_shape[-1]
        init = keras.initializers.RandomNormal(stddev=1.0 / math.sqrt(feature_size))
        self.dim_red = self.add_weight(
            name="dim_red", shape=(self.num_clusters, feature_size), initializer=init
        )
        self.gate_weights = self.add_weight(
            name="gate_weights", shape=(feature_size, self.num_clusters), initializer=init
        )
        if self.use_batch_norm:
            self.gate_bn.build((input_shape[0], self.num_clusters))
            self.gate_biases = None
        else:
            self.gate_biases = self.add_weight(
                name="gate_biases", shape=(self.num_clusters,), initializer="zeros"
            )

    def call(self, inputs, mask=None, training=None):
        _, a = self.assign(inputs, mask, training)  # (B, T, K)
        total = ops.sum(a, axis=1)  # (B, K)
        peak = l2_normalize(masked_max(a, mask), axis=-1)  # (B, K)
        logits = ops.matmul(ops.matmul(peak, self.dim_red), self.gate_weights)  # (B, K)
        if self.use_batch_norm:
            logits = self.gate_bn(logits, training=training)
        else:
            logits = logits + self.gate_biases
        return l2_normalize(ops.sigmoid(logits) * total, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_clusters)


@keras.saving.register_keras_serializable(package="y8m")
class DBoF(keras.layers.Layer):
    """The starter code's deep bag of frames: a wide per-frame projection pooled over frames.

    `h_t = relu6(BN(x_t W))` with `W` (D, K) ~ N(0, 1/sqrt(D)) (without batch norm a bias
    ~ N(0, 1/sqrt(D)) replaces it), then the maximum (`pooling="max"`, the starter's default)
    or the mean of `h_t` over the real frames. Padded frames (mask False) change nothing,
    batch-norm statistics included.

    Args:
        num_clusters: K, the projection width (the starter's `dbof_cluster_size`).
        use_batch_norm: batch norm on the projection instead of a bias.
        pooling: "max" or "average" over frames.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: (B, T, D) frames.
        mask: optional (B, T) boolean, True on real frames.
        training: batch norm mode.

    Output shape:
        (B, K), values in [0, 6] (zero for a video with no frames).

    Reference:
        google/youtube-8m `DbofModel` (`dbof_pooling_method`); yt8m_facts.md 4.3.
    """

    def __init__(
        self, num_clusters: int, use_batch_norm: bool = True, pooling: str = "max", **kwargs
    ):
        super().__init__(**kwargs)
        if int(num_clusters) < 1:
            raise ValueError(f"num_clusters must be a positive integer, received {num_clusters!r}")
        if pooling not in FRAME_POOLINGS:
            raise ValueError(f"pooling must be one of {FRAME_POOLINGS}, received {pooling!r}")
        self.num_clusters = int(num_clusters)
        self.use_batch_norm = bool(use_batch_norm)
        self.pooling = pooling
        self.projection_bn = (
            keras.layers.BatchNormalization(name="projection_bn", dtype=self.dtype_policy)
            if self.use_batch_norm
            else None
        )

    def build(self, input_shape):
        feature_size = input_shape[-1]
        init = keras.initializers.RandomNormal(stddev=1.0 / math.sqrt(feature_size))
        self.projection_weights = self.add_weight(
            name="projection_weights", shape=(feature_size, self.num_clusters), initializer=init
        )
        if self.use_batch_norm:
            self.projection_bn.build((input_shape[0], input_shape[1], self.num_clusters))
            self.projection_biases = None
        else:
            self.projection_biases = self.add_weight(
                name="projection_biases", shape=(self.num_clusters,), initializer=init
            )

    def call(self, inputs, mask=None, training=None):
        h = ops.matmul(zero_padding(inputs, mask), self.projection_weights)  # (B, T, K)
        if self.use_batch_norm:
            h = self.projection_bn(h, training=training, mask=mask)
        else:
            h = h + self.projection_biases
        # The projection of a zero (padded) row is not zero after BN or a bias: zero it again.
        h = zero_padding(ops.relu6(h), mask)
        if self.pooling == "max":
            return masked_max(h, mask)
        weights = float_mask(mask, h)  # (B, T, 1)
        return ops.sum(h, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)

    def compute_mask(self, inputs, mask=None):
        # The mask is consumed here; downstream layers get it explicitly, never implicitly.
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_clusters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_clusters": self.num_clusters,
                "use_batch_norm": self.use_batch_norm,
                "pooling": self.pooling,
            }
        )
        return config
