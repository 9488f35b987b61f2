"""parameter_table: counts without allocating, checked against hand counts."""

import keras
import psutil

import frame_models
from frame_models.summary import THESIS_PARAMS, count_params, parameter_table
from tests.frame_models.helpers import FRAME_FEATURES, VIDEO_FEATURES
from tests.frame_models.models import tiny

TINY = {"cluster_size": 4, "hidden_size": 8}


def test_hand_counted_models():
    # moe on 16 + 8 features, 10 classes, 2 mixtures: gates 24*10*3, experts 24*20 + 20 biases.
    assert count_params("moe", 10, tiny.VIDEO_FEATURES) == 24 * 10 * 3 + 24 * 20 + 20
    bn = 4  # gamma, beta, moving mean, moving variance per unit
    rgb = 16 * 4 + bn * 4 + 16 * 4  # assignment weights, assignment BN, centres
    audio = 8 * 2 + bn * 2 + 8 * 2  # half the clusters
    input_bn = bn * (16 + 8)
    hidden = (16 * 4 + 8 * 2) * 8 + bn * 8
    pooled_gating = 8 * 8 + bn * 8
    moe = 8 * 10 * 3 + 8 * 20 + 20
    output_gating = 10 * 10 + bn * 10
    expected = rgb + audio + input_bn + hidden + pooled_gating + moe + output_gating
    assert count_params("gated_netvlad", 10, tiny.FRAME_FEATURES, **TINY) == expected
    assert count_params("gated_netvlad", 10, tiny.FRAME_FEATURES, **TINY) == (
        frame_models.build("gated_netvlad", 10, tiny.FRAME_FEATURES, **TINY).count_params()
    )


def test_table_rows_and_thesis_figures():
    rows = parameter_table(4716, FRAME_FEATURES, VIDEO_FEATURES)
    assert [r["name"] for r in rows] == frame_models.names()
    by_name = {r["name"]: r for r in rows}
    for name, row in by_name.items():
        assert row["params"] > 0
        assert row["float32_mb"] == round(4 * row["params"] / 1e6, 1)
        assert row["thesis_params"] == THESIS_PARAMS.get(name)
    assert by_name["gated_netvlad"]["params"] > by_name["netvlad"]["params"]
    # WILLOW's best model at 4716 classes is about 333M parameters (reference 5.5).
    assert 330e6 < by_name["gated_netvlad"]["params"] < 336e6
    # The thesis's figures match 128 clusters and the last LSTM state (see docs/models.md).
    assert abs(count_params("netvlad", 4716, FRAME_FEATURES, cluster_size=128) - 160e6) < 10e6
    assert abs(count_params("gated_netvlad", 4716, FRAME_FEATURES, cluster_size=128) - 180e6) < 15e6
    assert abs(count_params("lstm", 4716, FRAME_FEATURES, rnn_state="last") - 40e6) < 3e6


def _dense_index() -> int:
    name = keras.layers.Dense(1).name  # "dense", "dense_1", ...
    return int(name.rsplit("_", 1)[1]) if "_" in name else 0


def test_counting_leaves_the_session_alone():
    """No layer names used up, no pending weights initialised by the caller's next model."""
    before = _dense_index()
    rss = psutil.Process().memory_info().rss
    parameter_table(
        4716, FRAME_FEATURES, VIDEO_FEATURES, ["gated_netvlad"]
    )  # 1.3 GB if its weights were ever allocated
    assert _dense_index() == before + 1
    # A Lambda layer is traced in a StatelessScope whose exit initialises pending weights.
    keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: 2 * x)])
    assert psutil.Process().memory_info().rss - rss < 500e6
