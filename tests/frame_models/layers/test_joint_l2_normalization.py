"""JointL2Normalization: one norm over all streams, padding zeroed."""

import numpy as np

from frame_models.layers import JointL2Normalization
from tests.frame_models.helpers import check_config_round_trip, frames, l2n, mask_of, with_garbage


def test_frames_normalised_over_concatenation():
    rng = np.random.default_rng(12)
    rgb, num_frames = frames(rng, size=5)
    audio = rng.normal(size=rgb.shape[:2] + (3,)).astype("float32")
    mask = mask_of(num_frames, rgb.shape[1])
    joint = l2n(np.concatenate([rgb, audio], axis=-1)) * mask[..., None]
    out = JointL2Normalization()(
        [with_garbage(rgb, num_frames), with_garbage(audio, num_frames, 1e9)], mask=mask
    )
    np.testing.assert_allclose(np.asarray(out[0]), joint[..., :5], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(out[1]), joint[..., 5:], rtol=1e-5, atol=1e-7)
    norms = np.sqrt((np.asarray(out[0]) ** 2).sum(-1) + (np.asarray(out[1]) ** 2).sum(-1))
    np.testing.assert_allclose(norms, mask.astype(float), atol=1e-6)


def test_video_level_and_zero_vectors():
    x = np.array([[3.0, 0.0], [0.0, 0.0]], "float32")
    y = np.array([[4.0], [0.0]], "float32")
    a, b = JointL2Normalization()([x, y])
    np.testing.assert_allclose(np.asarray(a), [[0.6, 0.0], [0.0, 0.0]], atol=1e-7)
    np.testing.assert_allclose(np.asarray(b), [[0.8], [0.0]], atol=1e-7)
    single = JointL2Normalization()([x])
    assert len(single) == 1
    check_config_round_trip(JointL2Normalization(), [x, y])
