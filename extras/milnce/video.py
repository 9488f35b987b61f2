"""Clip decoding with PyAV: one container per read, frames sampled at a fixed rate, crop, flip."""

from __future__ import annotations

import random
from collections.abc import Sequence

import av
import numpy as np

CROPS = ("random", "center")


class VideoReadError(RuntimeError):
    """A video that cannot be decoded (missing, corrupt, no frames in the window)."""


# What a broken or unreadable file raises inside PyAV; anything else is a bug and propagates.
READ_ERRORS = (VideoReadError, av.FFmpegError, OSError, EOFError, ValueError)


def video_info(path: str) -> tuple[float, float]:
    """(duration in seconds, average frame rate) of a video's first video stream."""
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VideoReadError(f"{path}: no video stream")
            stream = container.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 25)
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / av.time_base
            else:
                duration = (stream.frames or 0) / rate
            return duration, rate
    except READ_ERRORS as err:
        raise VideoReadError(f"{path}: {err}") from err


def _output_size(width: int, height: int, size: int, crop: str, short_side: int | None):
    """Frame size after scaling, before the square crop of side `size`."""
    if crop == "center":
        target = size
    elif short_side:
        target = max(short_side, size)
    else:
        target = max(min(width, height), size)
    scale = target / min(width, height)
    # Rounded up so the short side is never below the crop.
    return max(size, round(width * scale)), max(size, round(height * scale))


def decode_windows(
    path: str,
    starts: Sequence[float],
    num_frames: int,
    fps: float | None,
    size: int,
    crop: str = "center",
    flip: bool = False,
    short_side: int | None = None,
    rng: random.Random | None = None,
) -> np.ndarray:
    """Decodes several clips of one video through a single container.

    Frame j of a window starting at s is the frame on screen at time s + j / fps (the last frame
    whose timestamp is <= that time). Frames past the end of the video are zeros, as in the
    released loader.

    Args:
        path: the video file.
        starts: window start times in seconds (relative to the video's first frame).
        num_frames: T frames per window.
        fps: sampling rate; None for the video's own rate.
        size: side of the square output.
        crop: "center": scale the short side to `size` and take the centre square (evaluation);
            "random": keep the native size (or scale the short side to `short_side`, and never
            below `size`) and take a random square, one position per window (training).
        flip: flip each window horizontally with probability 0.5 (needs `rng`).
        short_side: see `crop`.
        rng: random source for crops and flips.

    Returns:
        uint8 [num_windows, 3, T, size, size] RGB.

    Raises:
        VideoReadError: the file is missing, unreadable, or a window has no frame at all.
    """
    if crop not in CROPS:
        raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
    rng = rng or random.Random(0)
    out = np.zeros((len(starts), 3, num_frames, size, size), dtype=np.uint8)
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VideoReadError(f"{path}: no video stream")
            stream = container.streams.video[0]
            rate = float(fps or stream.average_rate or stream.guessed_rate or 25)
            offset = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
            frame_seconds = 1.0 / float(stream.average_rate or rate)
            for w, start in enumerate(starts):
                targets = offset + float(start) + np.arange(num_frames) / rate
                frames = _sample_frames(container, stream, targets, frame_seconds)
                if not frames:
                    raise VideoReadError(f"{path}: no frame at {float(start):.2f}s")
                out[w] = _to_clip(frames, num_frames, size, crop, flip, short_side, rng)
    except READ_ERRORS as err:
        if isinstance(err, VideoReadError):
            raise
        raise VideoReadError(f"{path}: {type(err).__name__}: {err}") from err
    return out


def _sample_frames(container, stream, targets: np.ndarray, frame_seconds: float) -> dict:
    """Maps target index -> av.VideoFrame on screen at that time (missing past the end)."""
    first = float(targets[0])
    container.seek(max(0, int(first / stream.time_base)), stream=stream, backward=True)
    chosen: dict[int, object] = {}
    previous = None
    j = 0
    for frame in container.decode(stream):
        if frame.time is None:
            continue
        # Target j is shown by the latest frame at or before it; a newer frame closes it.
        while j < len(targets) and frame.time > targets[j] + 1e-6:
            chosen[j] = previous if previous is not None else frame
            j += 1
        if j >= len(targets):
            break
        previous = frame
    else:
        # End of file: the last frame stays on screen for one frame period.
        while previous is not None and j < len(targets):
            if targets[j] >= previous.time + frame_seconds - 1e-6:
                break
            chosen[j] = previous
            j += 1
    return chosen


def _to_clip(
    frames: dict,
    num_frames: int,
    size: int,
    crop: str,
    flip: bool,
    short_side: int | None,
    rng: random.Random,
) -> np.ndarray:
    """uint8 [3, T, size, size] from the sampled frames (zeros where none)."""
    sample = next(iter(frames.values()))
    width, height = _output_size(sample.width, sample.height, size, crop, short_side)
    if crop == "center":
        top, left = (height - size) // 2, (width - size) // 2
    else:
        top, left = rng.randint(0, height - size), rng.randint(0, width - size)
    mirror = flip and rng.random() < 0.5
    clip = np.zeros((num_frames, size, size, 3), dtype=np.uint8)
    converted: dict[int, np.ndarray] = {}
    for j, frame in frames.items():
        key = id(frame)
        if key not in converted:
            rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
            converted[key] = rgb[top : top + size, left : left + size]
        clip[j] = converted[key]
    if mirror:
        clip = clip[:, :, ::-1]
    return np.ascontiguousarray(clip.transpose(3, 0, 1, 2))  # (3, T, H, W)


def write_test_video(
    path: str,
    frames: np.ndarray,
    fps: int = 10,
    codec: str = "mpeg4",
) -> None:
    """Encodes uint8 [T, H, W, 3] frames into a video file (for tests and benchmarks).

    H and W must be even. `mpeg4` is part of every FFmpeg build PyAV ships.
    """
    with av.open(path, mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width = frames.shape[2]
        stream.height = frames.shape[1]
        stream.pix_fmt = "yuv420p"
        # High quality keeps solid colours close to the generated values.
        stream.options = {"qscale": "2"} if codec == "mpeg4" else {}
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
