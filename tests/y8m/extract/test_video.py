"""Frame selection against a simulation of the official OpenCV loop (winners_facts.md 6.1), and
PyAV decoding of generated files: one frame per second, RGB order, the cap, bad files."""

import fractions

import numpy as np
import pytest

from tests.y8m.extract.media import write_video
from y8m.extract import video


def _official_loop(timestamps_ms, every_ms=1000.0, max_num_frames=300):
    """[G] frame_iterator step by step, with CAP_PROP_POS_MSEC = the next frame's timestamp."""
    position = 0  # index of the frame about to be read
    last_ts = -99999
    kept = []
    while len(kept) < max_num_frames:
        while position < len(timestamps_ms) and timestamps_ms[position] < every_ms + last_ts:
            position += 1  # video_capture.read(), frame discarded
        if position >= len(timestamps_ms):
            break
        last_ts = timestamps_ms[position]
        kept.append(position)
        position += 1
    return kept


@pytest.mark.parametrize("fps", [5, 25, 29.97, 0.5])
def test_select_frames_matches_the_official_loop_at_constant_rates(fps):
    times = np.arange(int(40 * fps) + 1) * (1000.0 / fps)
    kept = video.select_frames(times)
    np.testing.assert_array_equal(kept, _official_loop(list(times)))
    gaps = np.diff(times[kept])
    if fps < 1:
        assert len(kept) == len(times)  # every frame is more than 1 s after the last
    else:
        # The first frame at or after 1 s past the last kept one: 1 s plus under a frame.
        assert (gaps >= 1000.0).all() and (gaps < 1000.0 + 1000.0 / fps).all()


def test_select_frames_at_29_97_fps_follows_the_last_kept_frame():
    times = np.arange(100) * (1001.0 / 30.0)
    assert video.select_frames(times).tolist() == [0, 30, 60, 90]  # at 0, 1001, 2002, 3003 ms


def test_select_frames_matches_the_official_loop_on_irregular_timestamps():
    rng = np.random.default_rng(3)
    for _ in range(20):
        times = np.cumsum(rng.exponential(rng.uniform(20, 700), size=rng.integers(1, 400)))
        times -= times[0]
        for every_ms, cap in ((1000.0, 300), (500.0, 7), (2500.0, 300)):
            expected = _official_loop(list(times), every_ms, cap)
            np.testing.assert_array_equal(video.select_frames(times, every_ms, cap), expected)


def test_select_frames_caps_and_handles_short_videos():
    times = np.arange(1000) * 40.0  # 40 s at 25 fps
    assert video.select_frames(times, max_frames=12).tolist() == list(range(0, 300, 25))
    assert video.select_frames(np.arange(20) * 40.0).tolist() == [0]  # 0.8 s: one frame
    assert video.select_frames([]).tolist() == []
    with pytest.raises(ValueError):
        video.select_frames([0.0, np.nan])


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    return path, write_video(path, seconds=4.2, fps=5, size=(64, 48), audio=True, seed=1)


def test_iter_frames_keeps_one_frame_per_second(clip):
    path, written = clip
    frames = list(video.iter_frames(str(path)))
    assert [t for t, _ in frames] == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0])
    for (_, image), index in zip(frames, [0, 5, 10, 15, 20]):
        assert image.dtype == np.uint8 and image.shape == (48, 64, 3)
        # Lossy MPEG-4 of blocky colour fields: close to the written frame, far from others.
        error = np.abs(image.astype(int) - written["frames"][index]).mean()
        assert error < 12
        assert error < np.abs(image.astype(int) - written["frames"][index - 1]).mean()


def test_iter_frames_rate_and_cap(clip):
    path, _ = clip
    assert [t for t, _ in video.iter_frames(str(path), max_frames=2)] == pytest.approx([0.0, 1.0])
    # Every 500 ms from frames 200 ms apart: 0, 600, 1200, ... (the threshold follows the
    # last kept frame).
    times = [t for t, _ in video.iter_frames(str(path), frames_per_second=2.0)]
    assert times == pytest.approx(np.arange(7) * 0.6)


def test_probe(clip):
    path, _ = clip
    info = video.probe(str(path))
    assert info["width"] == 64 and info["height"] == 48 and info["has_audio"] is True
    assert info["fps"] == pytest.approx(5.0) and info["duration"] == pytest.approx(4.2, abs=0.1)


def _solid_video(path, rgb, seconds=2, fps=4, size=(32, 32)):
    import av

    image = np.zeros((size[1], size[0], 3), np.uint8) + np.array(rgb, np.uint8)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.codec_context.time_base = fractions.Fraction(1, fps)
        for i in range(seconds * fps):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def test_iter_frames_gives_rgb_order(tmp_path):
    _solid_video(tmp_path / "red.mp4", (230, 20, 20))
    frames = list(video.iter_frames(str(tmp_path / "red.mp4")))
    assert len(frames) == 2
    red, green, blue = frames[0][1].reshape(-1, 3).mean(axis=0)
    assert red > 180 and green < 60 and blue < 60


def _audio_only(path):
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        for start in range(0, 16000, 1024):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="flt", layout="mono"
            )
            frame.sample_rate, frame.pts = 16000, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def _bad_files(tmp_path, clip_path):
    data = clip_path.read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    _audio_only(tmp_path / "audio.m4a")
    return {
        "truncated.mp4": "Invalid data",
        "garbage.mp4": "Invalid data",
        "audio.m4a": "no video stream",
        "missing.mp4": "No such file",
    }


def test_bad_files_are_video_errors_naming_the_path(tmp_path, clip):
    for name, reason in _bad_files(tmp_path, clip[0]).items():
        path = str(tmp_path / name)
        for read in (lambda p: list(video.iter_frames(p)), video.probe):
            with pytest.raises(video.VideoError) as caught:
                read(path)
            assert caught.value.path == path and reason in caught.value.reason
            assert path in str(caught.value) and "\n" not in str(caught.value)


def test_frames_without_pts_are_timed_by_decode_index():
    from types import SimpleNamespace

    untimed = SimpleNamespace(pts=None, time=None)
    assert video._frame_time(untimed, 6, fractions.Fraction(30000, 1001), "x.mp4") == pytest.approx(
        0.2002
    )
    assert video._frame_time(SimpleNamespace(pts=10, time=0.4), 3, None, "x.mp4") == 0.4
    with pytest.raises(video.VideoError, match="no frame rate"):
        video._frame_time(untimed, 0, None, "x.mp4")
