"""Average-pooling models against numpy: L2 per frame over both streams, mean of real frames."""

import numpy as np

from tests.frame_models.helpers import l2n, sigmoid, weight
from tests.frame_models.models.tiny import NUM_CLASSES, build, frame_batch


def test_average_logistic_matches_numpy():
    model = build("average_logistic")
    rng = np.random.default_rng(60)
    logistic = model.get_layer("logistic")
    logistic.kernel.assign(rng.normal(size=logistic.kernel.shape).astype("float32"))
    logistic.bias.assign(rng.normal(size=logistic.bias.shape).astype("float32"))
    batch = frame_batch(rng, num_frames=(6, 2, 0))
    expected = []
    for b, n in enumerate(batch["num_frames"]):
        joint = l2n(np.concatenate([batch["rgb"][b, :n], batch["audio"][b, :n]], axis=1))
        mean = joint.mean(axis=0) if n else np.zeros(24)
        expected.append(sigmoid(mean @ weight(logistic, "kernel") + weight(logistic, "bias")))
    np.testing.assert_allclose(np.asarray(model(batch)), np.stack(expected), rtol=1e-5, atol=1e-6)


def test_average_moe_cg_has_moe_and_output_gating():
    model = build("average_moe_cg")
    names = {layer.name for layer in model.layers}
    assert {"moe", "output_gating", "rgb_average", "audio_average"} <= names
    assert "pooled_gating" not in names
    assert model.get_layer("moe").gating_kernel.shape == (24, NUM_CLASSES * 3)
