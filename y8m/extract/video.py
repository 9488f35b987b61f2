"""Video frames at one per second with the official frame-selection rule, decoded with PyAV
(winners_facts.md 6.1): RGB uint8 frames and their times, or a `VideoError` naming the file."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from y8m.data import specs
from y8m.errors import UsageError

__all__ = ["VideoError", "iter_frames", "probe", "select_frames"]


class VideoError(Exception):
    """A video file that cannot be read: missing, corrupt, or without a video stream.

    The pipeline skips and reports these files (`--skip_bad`) instead of stopping.

    Attributes:
        path: the file, as given.
        reason: one line saying what went wrong.
    """

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        self.reason = " ".join(str(reason).split()) or "unknown error"
        super().__init__(f"cannot read video {self.path}: {self.reason}")


class _FrameSelector:
    """The official rule, frame by frame: keep a frame when its position is at least the last
    kept position + `every_ms` (the first frame always), until `max_frames` are kept."""

    def __init__(self, every_ms: float, max_frames: int):
        if not every_ms > 0 or not np.isfinite(every_ms):
            raise UsageError(f"the frame interval must be a positive number of ms, got {every_ms}")
        if int(max_frames) != max_frames or max_frames < 1:
            raise UsageError(f"max_frames must be a positive integer, got {max_frames}")
        self.every_ms = float(every_ms)
        self.max_frames = int(max_frames)
        self.count = 0
        self._last_ms = None

    @property
    def full(self) -> bool:
        return self.count >= self.max_frames

    def keep(self, position_ms: float) -> bool:
        if self.full:
            return False
        # The official loop starts with last_ts = -99999 ms, so its first frame is always kept.
        if self._last_ms is not None and position_ms < self._last_ms + self.every_ms:
            return False
        self._last_ms = position_ms
        self.count += 1
        return True


def select_frames(
    timestamps_ms, every_ms: float = 1000.0, max_frames: int = specs.MAX_FRAMES
) -> np.ndarray:
    """Indices of the frames the official extractor keeps, given every frame's timestamp.

    The official `frame_iterator` (google/youtube-8m `feature_extractor/
    extract_tfrecords_main.py`) reads frames with OpenCV and, before each read, looks at
    `CAP_PROP_POS_MSEC`. We read that position as the timestamp of the frame *about to be
    read*: the OpenCV FFmpeg backend of the time returned 1000 * frame_number / fps, with
    frame_number the frames read so far, i.e. the next frame's nominal time. The loop then
    means: the first frame is kept; every later frame is kept when its timestamp is at least
    the last kept frame's timestamp + `every_ms`; the others are read and discarded; it stops
    after `max_frames` kept frames. The threshold follows the last kept frame, not a fixed
    1-second grid, so at 29.97 fps the kept frames are 0, 30, 60, ... (0, 1001, 2002 ms).
    Two departures from that OpenCV: timestamps here are the real pts (OpenCV counted frames
    at the nominal rate; the rule only compares differences, so the two differ only for
    variable-rate streams), and newer OpenCV releases return the pts of the frame last read, which would keep the
    frame after each one chosen here.

    Args:
        timestamps_ms: (N,) presentation times in milliseconds, in decoding (display) order.
        every_ms: the interval, 1000 / frames_per_second (official `--frames_per_second` 1).
        max_frames: frames kept at most, from the start (official 300).

    Returns:
        (K,) int64 indices into `timestamps_ms`, K <= max_frames.
    """
    times = np.asarray(timestamps_ms, np.float64).reshape(-1)
    if not np.isfinite(times).all():
        raise ValueError("frame timestamps must be finite")
    selector = _FrameSelector(every_ms, max_frames)
    kept = []
    for index, position in enumerate(times):
        if selector.full:
            break
        if selector.keep(position):
            kept.append(index)
    return np.asarray(kept, np.int64)


def iter_frames(
    path: str, frames_per_second: float = 1.0, max_frames: int = specs.MAX_FRAMES
) -> Iterator[tuple[float, np.ndarray]]:
    """Decodes `path` lazily and yields only the frames `select_frames` keeps.

    Frames are decoded one at a time and converted to RGB only when kept, so a long video
    never sits in memory; decoding stops once `max_frames` are kept. A frame's time is
    `frame.time` (pts * time_base, as stored: not shifted by the stream's start time); frames
    without a pts get their decode index / the stream's average rate.

    Args:
        path: a video file any FFmpeg demuxer reads.
        frames_per_second: selection rate (official 1, i.e. every_ms = 1000).
        max_frames: frames yielded at most, from the start.

    Yields:
        (time_seconds, rgb) with rgb a (H, W, 3) uint8 array in RGB order.

    Raises:
        VideoError: the file is missing, unreadable or corrupt, has no video stream, or no
            frame could be decoded.
    """
    if not frames_per_second > 0:
        raise UsageError(f"frames_per_second must be positive, got {frames_per_second}")
    selector = _FrameSelector(1000.0 / frames_per_second, max_frames)
    import av

    try:
        with av.open(str(path)) as container:
            stream = _video_stream(container, path)
            # Let FFmpeg decode on several threads; frames still come out in display order.
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.guessed_rate
            for index, frame in enumerate(container.decode(stream)):
                seconds = _frame_time(frame, index, rate, path)
                if selector.keep(seconds * 1000.0):
                    yield seconds, frame.to_ndarray(format="rgb24")
                if selector.full:
                    break
    except (av.FFmpegError, OSError) as err:
        raise VideoError(path, _reason(err)) from None
    if selector.count == 0:
        raise VideoError(path, "no video frame could be decoded")


def probe(path: str) -> dict[str, Any]:
    """What the container says about `path`, without decoding frames.

    Returns:
        {"duration": seconds or None, "fps": average frames per second or None,
        "has_audio": bool, "width": int, "height": int}.

    Raises:
        VideoError: as `iter_frames`.
    """
    import av

    try:
        with av.open(str(path)) as container:
            stream = _video_stream(container, path)
            duration = None
            if container.duration is not None:
                duration = container.duration / av.time_base
            elif stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            rate = stream.average_rate or stream.guessed_rate
            return {
                "duration": duration,
                "fps": float(rate) if rate else None,
                "has_audio": bool(container.streams.audio),
                "width": int(stream.codec_context.width),
                "height": int(stream.codec_context.height),
            }
    except (av.FFmpegError, OSError) as err:
        raise VideoError(path, _reason(err)) from None


def _video_stream(container, path):
    if not container.streams.video:
        raise VideoError(path, "the file has no video stream")
    return container.streams.video[0]


def _frame_time(frame, index: int, rate, path) -> float:
    if frame.pts is not None and frame.time is not None:
        return float(frame.time)
    if not rate:
        raise VideoError(path, "frames carry no timestamps and the stream has no frame rate")
    return index / float(rate)


def _reason(err: BaseException) -> str:
    # PyAV's str() repeats the errno and the path; the message itself is the useful part.
    return getattr(err, "strerror", None) or str(err) or type(err).__name__
