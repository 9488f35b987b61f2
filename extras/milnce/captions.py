"""Narration captions: the per-video CSV and caption.json formats, candidates and clip windows."""

from __future__ import annotations

import dataclasses
import json
import os
import random

import numpy as np
import pandas as pd

from extras.runtime.inputs import check_times, child_path
from y8m.errors import UsageError

CAPTION_COLUMNS = ("start", "end", "text")


@dataclasses.dataclass(frozen=True)
class Captions:
    """The timed narrations of one video, in file order.

    Attributes:
        start: float64 [N] seconds.
        end: float64 [N] seconds.
        text: N strings.
    """

    start: np.ndarray
    end: np.ndarray
    text: list[str]

    def __len__(self) -> int:
        return len(self.text)


def read_caption_csv(path: str) -> Captions:
    """One video's captions from a CSV with columns start,end,text (HowTo100M layout).

    Raises:
        UsageError: missing columns, or a time that is not a number, NaN, negative or runs
            backwards (naming the file and its line).
    """
    frame = pd.read_csv(path, keep_default_na=False, dtype={"text": str})
    missing = [c for c in CAPTION_COLUMNS if c not in frame.columns]
    if missing:
        raise UsageError(f"caption file {path!r} lacks columns {missing}: expected start,end,text")
    start = pd.to_numeric(frame["start"], errors="coerce")  # text -> NaN, refused below
    end = pd.to_numeric(frame["end"], errors="coerce")
    # Line 1 is the header, so row i is line i + 2.
    start, end = check_times(start, end, f"caption file {path}", line_offset=2)
    return Captions(start, end, [str(t) for t in frame["text"]])


class CaptionStore:
    """Captions by video id, from a directory of `<video_id>.csv` or one `caption.json`.

    caption.json is a dict video_id -> {"start": [...], "end": [...], "text": [...]}. A CSV
    directory is read lazily, one file per lookup, so it scales to millions of videos.

    Args:
        source: the directory or the .json file.
    """

    def __init__(self, source: str):
        self.source = source
        self._table: dict[str, Captions] | None = None
        if os.path.isdir(source):
            return
        if not os.path.isfile(source):
            raise UsageError(
                f"captions {source!r} not found: pass a directory of <video_id>.csv or caption.json"
            )
        if not source.endswith(".json"):
            raise UsageError(f"captions {source!r}: expected a directory or a .json file")
        try:
            with open(source, encoding="utf-8") as f:
                raw = json.load(f)
        except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
            raise UsageError(f"captions {source} is not valid JSON: {err}") from None
        try:
            self._table = {}
            for vid, d in raw.items():
                start, end = check_times(d["start"], d["end"], f"{source}, video {vid!r}")
                self._table[str(vid)] = Captions(start, end, [str(t) for t in d["text"]])
        except (KeyError, TypeError, AttributeError) as err:
            raise UsageError(
                f"{source!r} is not a dict video_id -> {{start, end, text}}: {err!r}"
            ) from err

    def path(self, video_id: str) -> str:
        """`<source>/<video_id>.csv`; a UsageError for an id that would leave the folder."""
        return child_path(self.source, video_id, ".csv", "video id")

    def __contains__(self, video_id: str) -> bool:
        if self._table is not None:
            return video_id in self._table
        return os.path.isfile(self.path(video_id))

    def __getitem__(self, video_id: str) -> Captions:
        if self._table is not None:
            return self._table[video_id]
        return read_caption_csv(self.path(video_id))

    def all_text(self):
        """Every caption string of the store (for building a dictionary)."""
        if self._table is not None:
            for captions in self._table.values():
                yield from captions.text
            return
        for name in sorted(os.listdir(self.source)):
            if name.endswith(".csv"):
                yield from read_caption_csv(os.path.join(self.source, name)).text


def candidate_window(start: np.ndarray, end: np.ndarray, index: int, k: int) -> list[int]:
    """Indices of K consecutive captions around caption `index`, nearest in time first.

    The window grows one caption at a time towards the side whose addition keeps the covered
    time span shorter (left on a strict win). It snaps to [0, K) when it reaches the first
    caption and to the last K when it reaches the last one. Videos with fewer than K captions
    repeat the last caption.

    Args:
        start, end: float [N] caption times.
        index: the sampled caption.
        k: number of candidates.

    Returns:
        K indices in increasing order.
    """
    n = len(start)
    first = last = index
    while last - first + 1 < k:
        if first == 0:
            last = k - 1
            break
        if last == n - 1:
            first = n - k
            break
        if end[last] - start[first - 1] < end[last + 1] - start[first]:
            first -= 1
        else:
            last += 1
    first = max(first, 0)
    return [min(first + j, n - 1) for j in range(k)]


def clip_window(
    start: float,
    end: float,
    clip_seconds: float,
    min_time: float,
    rng: random.Random,
) -> float:
    """Start time of a training clip drawn inside a caption's time span.

    Spans shorter than `min_time` are first widened symmetrically to `min_time` (without going
    below 0); the clip start is then uniform in [start, max(start, end - clip_seconds)].
    """
    length = end - start
    if length < min_time:
        start = max(0.0, start - (min_time - length) / 2)
        end = start + min_time
    return rng.uniform(start, max(start, end - clip_seconds))


def eval_window_starts(
    start: float, end: float, clip_seconds: float, num_windows: int
) -> np.ndarray:
    """`num_windows` clip starts evenly spaced so the windows cover [start, end] (YouCook2)."""
    return np.linspace(start, max(start, end - clip_seconds), num_windows)
