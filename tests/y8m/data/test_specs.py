import numpy as np
import pytest

from y8m.data import specs
from y8m.errors import UsageError


def test_dequantisation_matches_official_constants():
    # q * 4/255 + 4/512 - 2 (reference 1.4): q=0 -> -1.9921875, q=255 -> 2.0078125
    assert specs.dequantize(np.array([0], np.uint8))[0] == pytest.approx(-1.9921875, abs=1e-7)
    assert specs.dequantize(np.array([255], np.uint8))[0] == pytest.approx(2.0078125, abs=1e-6)
    q = np.arange(256, dtype=np.uint8)
    np.testing.assert_allclose(specs.dequantize(q), q * (4 / 255) + (4 / 512 - 2), atol=1e-6)


def test_quantize_clips_and_rounds_like_the_extractor():
    x = np.array([-5.0, -2.0, 0.0, 2.0, 7.0])
    np.testing.assert_array_equal(specs.quantize(x), [0, 0, 128, 255, 255])
    # dequantize(quantize(x)) is within a bin (plus the half-bin offset) of x on [-2, 2]
    x = np.linspace(-2, 2, 1001)
    assert np.abs(specs.dequantize(specs.quantize(x)) - x).max() < 4 / 255


def test_releases():
    assert specs.release(2017).num_classes == 4716 and specs.release(2017).id_key == "video_id"
    assert specs.release(2018).num_classes == 3862 and specs.release(2018).id_key == "id"
    assert specs.release(2019).has_segments and specs.release(2019).num_rated_classes == 1000
    with pytest.raises(UsageError, match="2017, 2018, 2019"):
        specs.release(2020)


def test_feature_lists():
    assert [f.size for f in specs.parse_feature_list("rgb,audio")] == [1024, 128]
    assert [f.name for f in specs.parse_feature_list(("rgb",), (1024,))] == ["rgb"]
    assert specs.parse_feature_list(None, frame_level=False) == specs.VIDEO_FEATURES
    with pytest.raises(UsageError):
        specs.parse_feature_list("rgb,audio", "1024")
    with pytest.raises(UsageError, match="feature_sizes"):
        specs.parse_feature_list("mystery")
