"""RandomSubsequence: a fixed number of a video's real frames, in order, for recurrent models."""

from __future__ import annotations

import keras
from keras import ops

# A sort key above every uniform draw in [0, 1): padding is picked only once the real frames
# are used up.
_PADDING_KEY = 2.0


@keras.saving.register_keras_serializable(package="y8m")
class RandomSubsequence(keras.layers.Layer):
    """Keeps S = `num_samples` of each video's real frames, in their original order.

    In training the S frames are a random subset of the n real frames, drawn without
    replacement and uniformly over all subsets of size S, then sorted: an ordered random
    subsequence. At inference they are S evenly spaced frames, frame `floor((i + 1/2) n / S)`
    for i < S (the centres of S equal bins, as the reader's "uniform" sampling). Inference is
    deterministic, unlike WILLOW's `*_random_sequence`, which draws frames at test time too and
    so makes evaluation stochastic, yet it keeps training's length distribution: min(S, n) real
    frames in order. A video with fewer than S frames keeps all of them, followed by zero
    padding; one with no frames stays empty. `num_frames` above T counts as T.

    Args:
        num_samples: S, frames kept per video.
        seed: seed of the training draws (None: unseeded).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: list `[frames_1, ..., frames_m, num_frames]`: m >= 1 frame tensors
            (B, T, D_i) sharing the same real frames, zero or garbage on padding, and the
            (B,) integer count of each video's leading real frames.
        training: random subsets (True) or evenly spaced frames.

    Output shape:
        list `[frames_1, ..., frames_m, num_frames]`: (B, S, D_i) frames, exact zeros after each
        video's kept frames, and the (B,) int32 count of kept frames, min(S, n).

    Reference:
        winners_facts.md 4 (WILLOW's `lstm_random_sequence`, which samples with replacement and
        unordered).
    """

    def __init__(self, num_samples: int, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if int(num_samples) < 1:
            raise ValueError(f"num_samples must be a positive integer, received {num_samples!r}")
        self.num_samples = int(num_samples)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")

    def _random_indices(self, counts, length):
        real = ops.arange(length, dtype="int32")[None, :] < counts[:, None]  # (B, T + S)
        draws = keras.random.uniform(ops.shape(real), seed=self.seed_generator)
        keys = ops.where(real, draws, ops.full_like(draws, _PADDING_KEY))
        # The S smallest keys: a uniform subset of the real frames (all of them when n <= S).
        _, indices = ops.top_k(-keys, k=self.num_samples, sorted=False)
        return ops.sort(ops.cast(indices, "int32"), axis=-1)  # (B, S)

    def _even_indices(self, counts):
        steps = ops.arange(self.num_samples, dtype="int32")[None, :]  # (1, S)
        # Integer arithmetic: floor((2i + 1) n / 2S), exact where float32 could round.
        spread = ops.floor_divide((2 * steps + 1) * counts[:, None], 2 * self.num_samples)
        return ops.where(counts[:, None] >= self.num_samples, spread, steps)  # (B, S)

    def call(self, inputs, training=None):
        *streams, num_frames = inputs
        steps = ops.shape(streams[0])[1]
        counts = ops.cast(ops.reshape(num_frames, (-1,)), "int32")
        counts = ops.clip(counts, 0, steps)  # (B,)
        kept = ops.minimum(counts, self.num_samples)  # (B,)
        # S zero rows after every video make T + S >= S rows to choose from, whatever T is.
        streams = [ops.pad(x, [[0, 0], [0, self.num_samples], [0, 0]]) for x in streams]
        if training:
            indices = self._random_indices(counts, steps + self.num_samples)
        else:
            indices = self._even_indices(counts)
        real = ops.arange(self.num_samples, dtype="int32")[None, :] < kept[:, None]  # (B, S)
        real = ops.expand_dims(real, -1)  # (B, S, 1)
        outputs = []
        for x in streams:
            picked = ops.take_along_axis(x, ops.expand_dims(indices, -1), axis=1)  # (B, S, D)
            outputs.append(ops.where(real, picked, ops.zeros_like(picked)))
        return [*outputs, kept]

    def compute_mask(self, inputs, mask=None):
        # The kept frames' mask follows from the new num_frames; nothing is passed implicitly.
        return None

    def compute_output_shape(self, inputs_shape):
        *frames_shapes, count_shape = inputs_shape
        shapes = [(s[0], self.num_samples, s[-1]) for s in frames_shapes]
        return [*shapes, (count_shape[0],)]

    def compute_output_spec(self, inputs, training=None):
        shapes = self.compute_output_shape([x.shape for x in inputs])
        frames = [keras.KerasTensor(s, dtype=x.dtype) for s, x in zip(shapes[:-1], inputs[:-1])]
        return [*frames, keras.KerasTensor(shapes[-1], dtype="int32")]

    def get_config(self):
        config = super().get_config()
        config.update({"num_samples": self.num_samples, "seed": self.seed})
        return config
