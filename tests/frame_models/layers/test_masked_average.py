"""MaskedAverage: mean over the real frames only."""

import numpy as np

from frame_models.layers import MaskedAverage
from tests.frame_models.helpers import check_config_round_trip, frames, mask_of, with_garbage


def test_mean_of_real_frames():
    rng = np.random.default_rng(13)
    x, num_frames = frames(rng)
    mask = mask_of(num_frames, x.shape[1])
    got = np.asarray(MaskedAverage()(with_garbage(x, num_frames), mask=mask))
    expected = [x[b, :n].mean(0) if n else np.zeros(x.shape[-1]) for b, n in enumerate(num_frames)]
    np.testing.assert_allclose(got, np.stack(expected), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(MaskedAverage()(x)), x.mean(1), rtol=1e-5)
    assert MaskedAverage().compute_output_shape(x.shape) == (x.shape[0], x.shape[2])
    check_config_round_trip(MaskedAverage(), x, mask=mask)
