"""PyAV clip decoding: frame choice at a sampling rate, crops, flips, broken files."""

import random

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("av")

from extras.milnce.video import (  # noqa: E402
    VideoReadError,
    decode_windows,
    video_info,
    write_test_video,
)

STEP = 12  # grey level per frame index: survives compression (error ~ +-5)


@pytest.fixture(scope="module")
def ramp_video(tmp_path_factory):
    """20 frames at 10 fps, 48x64; frame i is grey level 12 * (i + 1)."""
    path = tmp_path_factory.mktemp("video") / "ramp.mp4"
    frames = np.zeros((20, 48, 64, 3), dtype=np.uint8)
    for i in range(20):
        frames[i] = STEP * (i + 1)
    write_test_video(str(path), frames, fps=10)
    return str(path)


def _frame_indices(clip):
    """Frame index shown in each frame of a [3, T, H, W] clip (-1 for a zero pad)."""
    levels = clip[:, :, 8:-8, 8:-8].astype(float).mean(axis=(0, 2, 3))
    return [int(round(v / STEP)) - 1 if v > STEP / 2 else -1 for v in levels]


def test_info(ramp_video):
    duration, rate = video_info(ramp_video)
    assert rate == pytest.approx(10.0)
    assert duration == pytest.approx(2.0, abs=0.11)


def test_frames_are_the_ones_on_screen_at_each_sample_time(ramp_video):
    out = decode_windows(ramp_video, [0.0, 0.35, 1.2], num_frames=4, fps=5, size=32)
    assert out.shape == (3, 3, 4, 32, 32) and out.dtype == np.uint8
    # Window at s: times s + j/5; at 10 fps the frame on screen at t is floor(10 t).
    assert _frame_indices(out[0]) == [0, 2, 4, 6]
    assert _frame_indices(out[1]) == [3, 5, 7, 9]
    assert _frame_indices(out[2]) == [12, 14, 16, 18]


def test_native_rate_and_zero_padding_past_the_end(ramp_video):
    native = decode_windows(ramp_video, [0.5], num_frames=4, fps=None, size=32)
    assert _frame_indices(native[0]) == [5, 6, 7, 8]
    tail = decode_windows(ramp_video, [1.7], num_frames=4, fps=10, size=32)
    assert _frame_indices(tail[0]) == [17, 18, 19, -1]
    with pytest.raises(VideoReadError):
        decode_windows(ramp_video, [5.0], num_frames=4, fps=10, size=32)


def test_center_crop_scales_short_side(tmp_path):
    # Left third black, middle white, right third black, at 48x96.
    frames = np.zeros((5, 48, 96, 3), dtype=np.uint8)
    frames[:, :, 32:64] = 255
    path = str(tmp_path / "bars.mp4")
    write_test_video(path, frames, fps=10)
    centre = decode_windows(path, [0.0], 2, 10, 24, crop="center")[0]
    assert centre.shape == (3, 2, 24, 24)
    # Short side 48 -> 24 halves the frame to 24x48; the centre square is the white bar
    # (x 16..32 of 48) plus 4 px of black each side.
    row = centre[0, 0, 12].astype(int)
    assert row[8:16].min() > 200 and row[:2].max() < 60 and row[-2:].max() < 60


def test_random_crop_and_flip(tmp_path):
    frames = np.zeros((5, 32, 64, 3), dtype=np.uint8)
    frames[:, :, :32] = 255  # left half white
    path = str(tmp_path / "half.mp4")
    write_test_video(path, frames, fps=10)
    lefts = set()
    flipped = 0
    for seed in range(12):
        clip = decode_windows(
            path, [0.0], 2, 10, 32, crop="random", flip=True, rng=random.Random(seed)
        )[0]
        row = clip[0, 0, 16].astype(int)
        white = np.flatnonzero(row > 128)
        lefts.add(len(white))
        flipped += bool(white.size) and white[0] > 0
    assert len(lefts) > 3  # the crop position varies
    assert 0 < flipped < 12  # about half the clips are mirrored
    # A short side below the crop is scaled up to it, never cropped out of range.
    assert decode_windows(path, [0.0], 2, 10, 48, crop="random")[0].shape == (3, 2, 48, 48)


def test_broken_and_missing_files(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x01not a video" * 100)
    for path in (broken, tmp_path / "missing.mp4"):
        with pytest.raises(VideoReadError):
            decode_windows(str(path), [0.0], 4, 5, 32)
        with pytest.raises(VideoReadError):
            video_info(str(path))
