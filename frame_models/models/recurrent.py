"""Recurrent baselines of the thesis (Table 3.1): stacked LSTM or GRU over ordered frames.

frames -> per-frame L2 -> [input BN] -> rnn_layers recurrent layers (masked, so padding is
skipped) -> final states -> [gating] -> MoE -> [Context Gating].
"""

from __future__ import annotations

from typing import Any

import keras

from frame_models import options
from frame_models.layers import FrameMask
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
        rnn_cells: units per recurrent layer (1024).
        rnn_layers: stacked layers (2).
        rnn_state: "all" feeds the classifier the final states of every layer (LSTM: c and h)
            as WILLOW did; "last" only the last layer's output, as the starter code did.
        gating_after_pooling: gate the state vector (the thesis found it redundant for RNNs).
        gating: "cg" (Context Gating) or "glu" for that gate.
        gating_batch_norm: batch norm on Context Gating logits instead of a bias.
        gating_after_moe: Context Gating on the probabilities.
        num_mixtures: MoE experts per class.
        moe_l2: L2 penalty of the MoE kernels.

    Returns:
        The uncompiled model.
    """
    layer_class = CELLS[cell]
    fusion = options.choice("fusion", fusion, common.FUSIONS)
    gating = options.choice("gating", gating, common.GATINGS)
    rnn_state = options.choice("rnn_state", rnn_state, RNN_STATES)
    input_batch_norm = options.boolean("input_batch_norm", input_batch_norm)
    rnn_cells = options.positive_int("rnn_cells", rnn_cells)
    rnn_layers = options.positive_int("rnn_layers", rnn_layers)
    head = common.head_options(num_mixtures, moe_l2, 0.0, gating_after_moe, gating_batch_norm)

    # Layers and functional graph.
    inputs, streams, mask = common.frame_inputs(features)
    streams = common.fuse_early(streams, fusion)
    stream_names = ["fused"] if len(streams) < len(features) else [f.name for f in features]
    # cuDNN fails on all-masked sequences: a video without frames reads one zero row instead.
    rnn_mask = FrameMask(min_frames=1, name="rnn_mask")([inputs["num_frames"], streams[0]])
    states = []
    for name, x in zip(stream_names, streams):
        if input_batch_norm:
            x = keras.layers.BatchNormalization(name=f"{name}_input_bn")(x, mask=mask)
        for index in range(rnn_layers):
            last = index == rnn_layers - 1
            layer = layer_class(
                rnn_cells,
                return_sequences=not last,
                return_state=True,
                name=f"{name}_{cell}_{index}",
            )
            # LSTM returns [output, h, c], GRU [output, h]; with a mask the final state is the
            # one after the last real frame.
            x, *layer_states = layer(x, mask=rnn_mask)
            if rnn_state == "all":
                states.extend(reversed(layer_states))  # WILLOW's (c, h) order
            elif last:
                states.append(layer_states[0])
    video = states[0] if len(states) == 1 else keras.layers.Concatenate(name="states")(states)
    if options.boolean("gating_after_pooling", gating_after_pooling):
        video = common.gate(video, gating, head["gating_batch_norm"], name="pooled")
    probabilities = common.classifier_head(video, num_classes, classifier="moe", **head)
    return keras.Model(inputs, probabilities, name=model_name)


@register_model(recurrent_model, sample="ordered")
def lstm(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """Two-layer LSTM over ordered frames, early fusion, MoE (Table 3.1: 81.7% GAP)."""
    return recurrent_model(num_classes, features, "lstm", "lstm", **hparams)


@register_model(recurrent_model, sample="ordered")
def gru(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """Two-layer GRU over ordered frames, early fusion, MoE (Table 3.1: 82.0% GAP)."""
    return recurrent_model(num_classes, features, "gru", "gru", **hparams)
