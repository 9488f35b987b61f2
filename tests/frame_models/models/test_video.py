"""Video-level models: per-video L2 over mean_rgb + mean_audio, then the classifier."""

import numpy as np

import frame_models
from tests.frame_models.helpers import l2n, sigmoid, weight
from tests.frame_models.models.tiny import NUM_CLASSES, VIDEO_FEATURES, build, video_batch


def test_logistic_matches_numpy():
    model = build("logistic")
    rng = np.random.default_rng(70)
    logistic = model.get_layer("logistic")
    logistic.bias.assign(rng.normal(size=logistic.bias.shape).astype("float32"))
    batch = video_batch(rng)
    joint = l2n(np.concatenate([batch["mean_rgb"], batch["mean_audio"]], axis=1))
    expected = sigmoid(joint @ weight(logistic, "kernel") + weight(logistic, "bias"))
    np.testing.assert_allclose(np.asarray(model(batch)), expected, rtol=1e-5, atol=1e-6)


def test_moe_inputs_and_defaults():
    model = frame_models.build("moe", NUM_CLASSES, VIDEO_FEATURES)
    assert sorted(model.input) == ["mean_audio", "mean_rgb"]
    moe = model.get_layer("moe")
    assert moe.num_mixtures == 2 and moe.l2_penalty == 1e-8
    assert "num_frames" not in model.input
