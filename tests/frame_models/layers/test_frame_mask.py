"""FrameMask: t < num_frames."""

import numpy as np

from frame_models.layers import FrameMask
from tests.frame_models.helpers import check_config_round_trip


def test_marks_leading_frames():
    frames = np.zeros((4, 3, 2), "float32")
    num_frames = np.array([3, 1, 0, 7], "int32")
    mask = np.asarray(FrameMask()([num_frames, frames]))
    expected = np.array([[1, 1, 1], [1, 0, 0], [0, 0, 0], [1, 1, 1]], bool)
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, expected)
    assert FrameMask().compute_output_shape([(4,), (4, 3, 2)]) == (4, 3)
    check_config_round_trip(FrameMask(), [num_frames.astype("int64"), frames])


def test_min_frames_marks_leading_rows():
    frames = np.zeros((3, 3, 2), "float32")
    layer = FrameMask(min_frames=1)
    mask = np.asarray(layer([np.array([0, 2, 5]), frames]))
    np.testing.assert_array_equal(mask, [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
    assert FrameMask.from_config(layer.get_config()).min_frames == 1
