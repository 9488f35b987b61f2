"""Recurrent baselines of the thesis (Table 3.1): stacked LSTM or GRU over ordered frames.

frames -> per-frame L2 -> [ordered random subsequence] -> [input BN] -> rnn_layers recurrent
layers, optionally bidirectional (masked, so padding is skipped) -> final states -> [gating]
-> [dropout] -> MoE -> [Context Gating].
"""

from __future__ import annotations

from typing import Any

import keras

from frame_models import options
from frame_models.layers import FrameMask
from frame_models.layers.random_subsequence import RandomSubsequence
from frame_models.models import common
from frame_models.registry import register_model

CELLS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}
RNN_STATES = ("all", "last")


def recurrent_model(
    num_classes: int,
    features: tuple[options.Feature, ...],
    cell: str,
    model_name: str,
    /,
    *,
    fusion: str = "early",
    input_batch_norm: bool = False,
    rnn_cells: int = 1024,
    rnn_layers: int = 2,
    rnn_state: str = "all",
    gating_after_pooling: bool = False,
    gating: str = "cg",
    gating_batch_norm: bool = True,
    gating_after_moe: bool = False,
    num_mixtures: int = 2,
    moe_l2: float = 1e-6,
    bidirectional: bool = False,
    random_sequence: bool = False,
    sample_frames: int = 150,
    drop_rate: float = 0.0,
) -> keras.Model:
    """A frame-level model reading the frames in order with stacked recurrent layers.

    Args:
        num_classes: C.
        features: the input streams, checked by `frame_models.build`.
        cell: "lstm" or "gru" (fixed by the registry name).
        model_name: the registry name, given to the keras.Model.
        fusion: "early" reads the per-frame concatenation of all streams (the starter code and
            the better choice for RNNs in Table 3.4); "late" runs one stack per stream.
        input_batch_norm: batch norm on the normalised frames.
        rnn_cells: units per recurrent layer (1024), split between the directions with
            `bidirectional`.
        rnn_layers: stacked layers (2).
        rnn_state: "all" feeds the classifier the final states of every layer (LSTM: c and h)
            as WILLOW did; "last" only the last layer's output, as the starter code did.
        gating_after_pooling: gate the state vector (the thesis found it redundant for RNNs).
        gating: "cg" (Context Gating) or "glu" for that gate.
        gating_batch_norm: batch norm on Context Gating logits instead of a bias.
        gating_after_moe: Context Gating on the probabilities.
        num_mixtures: MoE experts per class.
        moe_l2: L2 penalty of the MoE kernels.
        bidirectional: every layer reads the frames both ways, `rnn_cells // 2` units per
            direction, outputs and states concatenated (as [M]'s GRUbidirect splits its cells),
            so the classifier input keeps its size.
        random_sequence: read `sample_frames` of the real frames in their order instead of all
            of them: a random subset in training, evenly spaced frames at inference
            (`RandomSubsequence`); videos with fewer frames are read whole.
        sample_frames: frames read with `random_sequence` (150, as WILLOW's README LSTM run).
        drop_rate: dropout on the state vector before the MoE, in training.

    Returns:
        The uncompiled model.
    """
    fusion = options.choice("fusion", fusion, common.FUSIONS)
    gating = options.choice("gating", gating, common.GATINGS)
    rnn_state = options.choice("rnn_state", rnn_state, RNN_STATES)
    input_batch_norm = options.boolean("input_batch_norm", input_batch_norm)
    rnn = _rnn_options(cell, rnn_cells, rnn_layers, bidirectional)
    random_sequence = options.boolean("random_sequence", random_sequence)
    sample_frames = options.positive_int("sample_frames", sample_frames)
    head = common.head_options(
        num_mixtures, moe_l2, 0.0, gating_after_moe, gating_batch_norm, drop_rate
    )

    # Layers and functional graph.
    inputs, streams, mask = common.frame_inputs(features)
    num_frames = inputs["num_frames"]
    if random_sequence:
        *streams, num_frames = RandomSubsequence(sample_frames, name="random_subsequence")(
            [*streams, num_frames]
        )
        mask = FrameMask(name="subsequence_mask")([num_frames, streams[0]])
    streams = common.fuse_early(streams, fusion)
    stream_names = ["fused"] if len(streams) < len(features) else [f.name for f in features]
    # cuDNN fails on all-masked sequences: a video without frames reads one zero row instead.
    rnn_mask = FrameMask(min_frames=1, name="rnn_mask")([num_frames, streams[0]])
    states = []
    for name, x in zip(stream_names, streams):
        if input_batch_norm:
            x = keras.layers.BatchNormalization(name=f"{name}_input_bn")(x, mask=mask)
        states.extend(_stack(x, rnn_mask, name, rnn_state, **rnn))
    video = states[0] if len(states) == 1 else keras.layers.Concatenate(name="states")(states)
    if options.boolean("gating_after_pooling", gating_after_pooling):
        video = common.gate(video, gating, head["gating_batch_norm"], name="pooled")
    probabilities = common.classifier_head(video, num_classes, classifier="moe", **head)
    return keras.Model(inputs, probabilities, name=model_name)


def _rnn_options(cell, rnn_cells, rnn_layers, bidirectional) -> dict[str, Any]:
    """The checked recurrent-stack settings `_stack` takes."""
    rnn_cells = options.positive_int("rnn_cells", rnn_cells)
    bidirectional = options.boolean("bidirectional", bidirectional)
    if bidirectional and rnn_cells < 2:
        raise ValueError(
            "--rnn_cells must be at least 2 with --bidirectional (half per direction), "
            f"received {rnn_cells!r}"
        )
    return {
        "cell": cell,
        "units": rnn_cells // 2 if bidirectional else rnn_cells,
        "num_layers": options.positive_int("rnn_layers", rnn_layers),
        "bidirectional": bidirectional,
    }


def _stack(x, mask, name, rnn_state, *, cell, units, num_layers, bidirectional) -> list:
    """The states of `num_layers` recurrent layers over (B, T, D) `x` that go to the classifier.

    Args:
        x: (B, T, D) frames of one stream.
        mask: (B, T) boolean, True on the frames to read (at least one per video).
        name: the stream's name, prefix of the layer names (`<name>_<cell>_<index>`).
        rnn_state: "all" or "last".
        cell, units, num_layers, bidirectional: from `_rnn_options`.

    Returns:
        rnn_state "all": every layer's final states in WILLOW's (c, h) order, per direction
        forward first (each (B, units)); "last": the last layer's output, (B, units) or, both
        directions concatenated, (B, 2 * units).
    """
    states = []
    for index in range(num_layers):
        last = index == num_layers - 1
        layer_name = f"{name}_{cell}_{index}"
        layer = CELLS[cell](units, return_sequences=not last, return_state=True, name=layer_name)
        if bidirectional:
            # Keras runs the backward copy on the reversed frames, skipping masked steps, and
            # flips its output sequence back, so frame t meets both directions' outputs at t.
            layer = keras.layers.Bidirectional(layer, merge_mode="concat", name=layer_name)
        # LSTM returns [output, h, c], GRU [output, h]; Bidirectional the forward states then
        # the backward ones. With a mask the final state is the one after the last real frame
        # (for the backward direction, after the first frame).
        x, *layer_states = layer(x, mask=mask)
        if rnn_state == "all":
            per_direction = len(layer_states) // (2 if bidirectional else 1)
            for start in range(0, len(layer_states), per_direction):
                states.extend(reversed(layer_states[start : start + per_direction]))
        elif last:
            states.append(x)
    return states


@register_model(recurrent_model, sample="ordered")
def lstm(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """Two-layer LSTM over ordered frames, early fusion, MoE (Table 3.1: 81.7% GAP)."""
    return recurrent_model(num_classes, features, "lstm", "lstm", **hparams)


@register_model(recurrent_model, sample="ordered")
def gru(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """Two-layer GRU over ordered frames, early fusion, MoE (Table 3.1: 82.0% GAP)."""
    return recurrent_model(num_classes, features, "gru", "gru", **hparams)
