"""NeXtVLAD: VLAD pooling of expanded, grouped frames with per-group attention (Lin et al. 2018)."""

from __future__ import annotations

import keras
from keras import ops

from frame_models.layers.ops import l2_normalize, zero_padding


def variance_scaling():
    """slim's `variance_scaling_initializer()` default: factor 2, fan_in, truncated normal."""
    return keras.initializers.VarianceScaling(2.0, "fan_in", "truncated_normal")


def _positive_int(name: str, value) -> int:
    try:
        if isinstance(value, bool) or int(value) != value or int(value) < 1:
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive integer, received {value!r}") from None
    return int(value)


@keras.saving.register_keras_serializable(package="y8m")
class NeXtVLAD(keras.layers.Layer):
    """NetVLAD on G low-dimensional groups of each expanded frame, weighted by attention.

    With expansion λ, G groups and d = λN / G, for every real frame x_t (N):

    1. `ẋ_t = x_t W_e + b_e` (λN), linear.
    2. `a_t = sigmoid(ẋ_t W_a + b_a)` (G): one attention per group, computed from the whole
       expanded vector.
    3. `α_{t,g} = softmax_K(BN(ẋ_t W_c)_g)`: `W_c` (λN, G*K) without bias; the batch norm has
       G*K channels.
    4. Group slices `x̃_{t,g} = ẋ_t[g d : (g + 1) d]` and centres `c` (d, K), shared by groups.
    5. `v[j, k] = sum_{t,g} a_{t,g} α_{t,g,k} (x̃_{t,g,j} - c[j, k])` (paper eq. 7).
    6. Intra-normalisation only (L2 over j for each cluster, no global L2), flattening with
       index `j * K + k`, then a batch norm (`vlad_bn`) over the d*K vector.

    Every weight is drawn from slim's variance-scaling default (factor 2, fan_in, truncated
    normal), biases are zeros. Unlike the reference, padded frames (mask False) are zeroed after
    the expansion, whose bias would otherwise make them non-zero, and the assignment batch norm
    takes its statistics over real frames only, so padding changes nothing anywhere; T comes
    from the input. A video without frames pools to `v = 0` before `vlad_bn`.

    Args:
        num_clusters: K.
        expansion: λ, the expansion factor of the frames.
        groups: G; λN must be divisible by G.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: (B, T, N) frames.
        mask: optional (B, T) boolean, True on real frames.
        training: batch norm mode.

    Output shape:
        (B, d * K) with d = λN / G.

    Reference:
        Lin et al. 2018 (NeXtVLAD), section 3.3, eq. 4-8; winners_facts.md 1.2.
    """

    def __init__(self, num_clusters: int, expansion: int = 2, groups: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.num_clusters = _positive_int("num_clusters", num_clusters)
        self.expansion = _positive_int("expansion", expansion)
        self.groups = _positive_int("groups", groups)
        self.cluster_bn = keras.layers.BatchNormalization(
            name="cluster_bn", dtype=self.dtype_policy
        )
        self.vlad_bn = keras.layers.BatchNormalization(name="vlad_bn", dtype=self.dtype_policy)

    def _group_size(self, feature_size: int) -> int:
        expanded = self.expansion * feature_size
        if expanded % self.groups:
            raise ValueError(
                f"expansion * feature size ({self.expansion} * {feature_size} = {expanded}) "
                f"must be divisible by groups ({self.groups})"
            )
        return expanded // self.groups

    def build(self, input_shape):
        feature_size = input_shape[-1]
        group_size = self._group_size(feature_size)
        expanded = self.expansion * feature_size
        gk = self.groups * self.num_clusters
        self.expansion_kernel = self.add_weight(
            name="expansion_kernel", shape=(feature_size, expanded), initializer=variance_scaling()
        )
        self.expansion_bias = self.add_weight(
            name="expansion_bias", shape=(expanded,), initializer="zeros"
        )
        self.attention_kernel = self.add_weight(
            name="attention_kernel", shape=(expanded, self.groups), initializer=variance_scaling()
        )
        self.attention_bias = self.add_weight(
            name="attention_bias", shape=(self.groups,), initializer="zeros"
        )
        self.cluster_weights = self.add_weight(
            name="cluster_weights", shape=(expanded, gk), initializer=variance_scaling()
        )
        self.cluster_centers = self.add_weight(
            name="cluster_centers",
            shape=(group_size, self.num_clusters),
            initializer=variance_scaling(),
        )
        self.cluster_bn.build((input_shape[0], input_shape[1], gk))
        self.vlad_bn.build((input_shape[0], group_size * self.num_clusters))

    def call(self, inputs, mask=None, training=None):
        group_size = self._group_size(inputs.shape[-1])
        x = zero_padding(inputs, mask)
        # The expansion bias would make padded rows non-zero: zero them again.
        x = zero_padding(ops.matmul(x, self.expansion_kernel) + self.expansion_bias, mask)
        attention = ops.sigmoid(ops.matmul(x, self.attention_kernel) + self.attention_bias)
        attention = zero_padding(attention, mask)  # (B, T, G)
        logits = ops.matmul(x, self.cluster_weights)  # (B, T, G*K)
        logits = self.cluster_bn(logits, training=training, mask=mask)
        steps = ops.shape(x)[1]
        logits = ops.reshape(logits, (-1, steps, self.groups, self.num_clusters))  # (B, T, G, K)
        weights = ops.softmax(logits, axis=-1) * ops.expand_dims(attention, -1)
        slices = ops.reshape(x, (-1, steps, self.groups, group_size))  # (B, T, G, d)
        weight_sum = ops.sum(weights, axis=(1, 2))  # (B, K)
        vlad = ops.einsum("btgk,btgd->bdk", weights, slices)  # (B, d, K)
        vlad = vlad - ops.expand_dims(weight_sum, 1) * self.cluster_centers
        vlad = l2_normalize(vlad, axis=1)  # intra-normalisation; no global L2
        vlad = ops.reshape(vlad, (-1, group_size * self.num_clusters))  # (B, d*K), j*K + k
        return self.vlad_bn(vlad, training=training)

    def compute_mask(self, inputs, mask=None):
        # The mask is consumed here; downstream layers get it explicitly, never implicitly.
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self._group_size(input_shape[-1]) * self.num_clusters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_clusters": self.num_clusters,
                "expansion": self.expansion,
                "groups": self.groups,
            }
        )
        return config
