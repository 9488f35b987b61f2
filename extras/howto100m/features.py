"""Pre-extracted per-video features and clip vectors (thesis 5.5.1).

A video's streams are `.npy` files `<dir>/<video_id>.npy`, each [T, D] float at a fixed rate:
2-D ResNet-152 features at 1 per second and 3-D ResNeXt-101 features at 1.5 per second. A clip
[start, end] becomes, per stream, the max over the rows whose time span overlaps the clip,
L2-normalised; the streams are concatenated (2 x 2048 = 4096 in the thesis).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from extras.runtime.inputs import child_path
from y8m.errors import UsageError

FPS_2D = 1.0
FPS_3D = 1.5  # 16-frame clips every 16 frames of 24 fps video

Stream = tuple[np.ndarray, float]  # ([T, D] features, rows per second)


class FeatureStore:
    """Per-video feature files of one or two streams.

    Args:
        dir_2d: folder of 2-D features `<video_id>.npy`.
        dir_3d: folder of 3-D features; empty to use the 2-D stream only.
        fps_2d: rows per second of the 2-D stream.
        fps_3d: rows per second of the 3-D stream.
    """

    def __init__(
        self, dir_2d: str, dir_3d: str = "", fps_2d: float = FPS_2D, fps_3d: float = FPS_3D
    ):
        self.streams = [(dir_2d, float(fps_2d))]
        if dir_3d:
            self.streams.append((dir_3d, float(fps_3d)))
        for folder, fps in self.streams:
            if not folder or not os.path.isdir(folder):
                raise UsageError(f"feature folder {folder!r} does not exist")
            if fps <= 0:
                raise UsageError(f"feature rate must be positive, got {fps}")
        self.widths: list[int | None] = [None] * len(self.streams)  # D per stream, once seen
        self._width_source: list[str] = [""] * len(self.streams)

    def path(self, folder: str, video_id: str) -> str:
        """`<folder>/<video_id>.npy`; a UsageError for an id that would leave the folder."""
        return child_path(folder, video_id, ".npy", "video id")

    def has(self, video_id: str) -> bool:
        return all(os.path.isfile(self.path(d, video_id)) for d, _ in self.streams)

    def load(self, video_id: str) -> list[Stream]:
        """The video's streams, memory-mapped.

        Every video of a stream must have the width of the first one read.

        Raises:
            UsageError: a missing file, one that is not a 2-D array or of another width.
        """
        streams = []
        for i, (folder, fps) in enumerate(self.streams):
            path = self.path(folder, video_id)
            try:
                array = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as err:
                raise UsageError(f"cannot read features {path}: {err}") from err
            if array.ndim != 2:
                raise UsageError(f"{path}: expected [T, D] features, got shape {array.shape}")
            if self.widths[i] is None:
                self.widths[i], self._width_source[i] = int(array.shape[1]), path
            elif array.shape[1] != self.widths[i]:
                raise UsageError(
                    f"{path} holds {array.shape[1]}-wide features but {self._width_source[i]} "
                    f"holds {self.widths[i]}-wide ones: every video of a stream needs one width"
                )
            streams.append((array, fps))
        return streams

    def video_dim(self, video_id: str) -> int:
        """Sum of the stream dimensions, read from one video's files."""
        return sum(array.shape[1] for array, _ in self.load(video_id))


def _rows(num_rows: int, fps: float, start: float, end: float) -> slice:
    # Rows whose span [r / fps, (r + 1) / fps) meets [start, end); at least one row, clamped,
    # so a caption running past the last feature still sees the video's end.
    lo = math.floor(start * fps + 1e-9)
    hi = max(math.ceil(end * fps - 1e-9), lo + 1)
    lo = min(max(lo, 0), num_rows - 1)
    hi = min(max(hi, lo + 1), num_rows)
    return slice(lo, hi)


def clip_vector(streams: Sequence[Stream], start: float, end: float) -> np.ndarray:
    """Max-pools each stream over [start, end] seconds, L2-normalises, concatenates.

    Returns:
        float32 [sum of D]; a stream with no rows contributes zeros.
    """
    parts = []
    for array, fps in streams:
        if len(array) == 0:
            parts.append(np.zeros(array.shape[1], dtype=np.float32))
            continue
        pooled = np.asarray(array[_rows(len(array), fps, start, end)], dtype=np.float32).max(0)
        parts.append(pooled / max(float(np.linalg.norm(pooled)), 1e-12))
    return np.concatenate(parts)


def num_seconds(streams: Sequence[Stream]) -> int:
    """Length of the video in whole seconds, from its first stream."""
    array, fps = streams[0]
    return int(math.ceil(len(array) / fps - 1e-9))


def second_vectors(streams: Sequence[Stream], window: float = 1.0) -> np.ndarray:
    """One clip vector per second t, pooled over a `window` centred on t + 0.5.

    Returns:
        float32 [num_seconds, sum of D].
    """
    centres = np.arange(num_seconds(streams)) + 0.5
    return np.stack([clip_vector(streams, c - window / 2, c + window / 2) for c in centres])


def grow_window(
    start: np.ndarray,
    end: np.ndarray,
    index: int,
    min_time: float,
    num_words=None,
    min_words: int = 0,
) -> tuple[int, int]:
    """Grows caption `index` over its neighbours until it spans `min_time` s and `min_words`.

    At each step the side giving the shorter span is taken (left on a tie), as the
    reference loader does; words keep their order because the captions are joined in order.

    Args:
        start, end: [N] caption times of one video.
        index: the caption to grow.
        min_time: minimum clip length in seconds.
        num_words: optional [N] kept-word counts, needed when `min_words` > 0.
        min_words: minimum number of words.

    Returns:
        (first, last) caption indices, inclusive.
    """
    n = len(start)
    s = e = index

    def short() -> bool:
        too_short = end[e] - start[s] < min_time
        if min_words and num_words is not None:
            too_short = too_short or sum(num_words[s : e + 1]) < min_words
        return too_short

    while short() and (s > 0 or e < n - 1):
        if s > 0 and e < n - 1:
            if end[e] - start[s - 1] <= end[e + 1] - start[s]:
                s -= 1
            else:
                e += 1
        elif s > 0:
            s -= 1
        else:
            e += 1
    return s, e
