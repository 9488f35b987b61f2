"""ClusterPooling: the soft cluster assignment shared by NetVLAD, NetRVLAD, NetFV and SoftBoW."""

from __future__ import annotations

import math

import keras
from keras import ops

from frame_models.layers.ops import zero_padding


class ClusterPooling(keras.layers.Layer):
    """Base class: soft-assigns every real frame to `num_clusters` learned clusters.

    `a = softmax_K(BN(x W))` with `W` (D, K) ~ N(0, 1/sqrt(D)); without batch norm a bias
    replaces it: `softmax_K(x W + b)` (thesis eq. 3.8). Padded frames get assignment 0 and are
    zeroed, so they add nothing to any sum a subclass takes over frames; the batch norm
    statistics are taken over real frames only.

    Args:
        num_clusters: K.
        use_batch_norm: batch norm on the assignment logits (the reference) instead of a bias.
        **kwargs: base `keras.layers.Layer` arguments.

    Reference:
        Miech et al. 2017, eq. 3.8; yt8m_facts.md 6.1.
    """

    def __init__(self, num_clusters: int, use_batch_norm: bool = True, **kwargs):
        super().__init__(**kwargs)
        if int(num_clusters) < 1:
            raise ValueError(f"num_clusters must be a positive integer, received {num_clusters!r}")
        self.num_clusters = int(num_clusters)
        self.use_batch_norm = bool(use_batch_norm)
        self.assignment_bn = (
            keras.layers.BatchNormalization(name="assignment_bn", dtype=self.dtype_policy)
            if self.use_batch_norm
            else None
        )

    def build(self, input_shape):
        feature_size = input_shape[-1]
        init = keras.initializers.RandomNormal(stddev=1.0 / math.sqrt(feature_size))
        self.cluster_weights = self.add_weight(
            name="cluster_weights", shape=(feature_size, self.num_clusters), initializer=init
        )
        if self.use_batch_norm:
            self.assignment_bn.build((input_shape[0], input_shape[1], self.num_clusters))
            self.cluster_biases = None
        else:
            self.cluster_biases = self.add_weight(
                name="cluster_biases", shape=(self.num_clusters,), initializer=init
            )

    def assign(self, inputs, mask=None, training=None):
        """Frames with padding zeroed, and their soft assignments.

        Args:
            inputs: (B, T, D) frames.
            mask: optional (B, T) boolean, True on real frames.
            training: batch norm mode.

        Returns:
            `(x, a)`: x (B, T, D) with zero padding, a (B, T, K) assignments, zero on padding.
        """
        x = zero_padding(inputs, mask)
        logits = ops.matmul(x, self.cluster_weights)  # (B, T, K)
        if self.use_batch_norm:
            logits = self.assignment_bn(logits, training=training, mask=mask)
        else:
            logits = logits + self.cluster_biases
        return x, zero_padding(ops.softmax(logits, axis=-1), mask)

    def compute_mask(self, inputs, mask=None):
        # The mask is consumed here; downstream layers get it explicitly, never implicitly.
        return None

    def get_config(self):
        config = super().get_config()
        config.update({"num_clusters": self.num_clusters, "use_batch_norm": self.use_batch_norm})
        return config
