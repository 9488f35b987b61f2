"""The caption.json layout: `{video_id: {"start": [s], "end": [s], "text": [str]}}` in seconds."""

from __future__ import annotations

import json
import os

import numpy as np

from extras.runtime.inputs import check_times
from y8m.errors import UsageError
from y8m.fileio import atomic_open


class VideoCaptions:
    """The captions of one video as arrays: `start` [N] float64, `end` [N], `text` list[str]."""

    def __init__(self, start, end, text):
        self.start = np.asarray(start, dtype=np.float64)
        self.end = np.asarray(end, dtype=np.float64)
        self.text = list(text)

    def __len__(self) -> int:
        return len(self.text)


def load_captions(path: str) -> dict[str, VideoCaptions]:
    """Reads and checks a caption.json file.

    Raises:
        UsageError: missing file, invalid JSON, or an entry without equal-length
            `start`/`end`/`text` lists.
    """
    if not os.path.isfile(path):
        raise UsageError(
            f"caption file {path!r} not found; make one with `y8m extras howto100m captions`"
        )
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"{path} is not valid JSON ({err})") from err
    if not isinstance(raw, dict):
        raise UsageError(f"{path}: expected an object mapping video ids to captions")
    captions = {}
    for vid, entry in raw.items():
        if not isinstance(entry, dict) or not {"start", "end", "text"} <= set(entry):
            raise UsageError(f"{path}: video {vid!r} needs 'start', 'end' and 'text' lists")
        if not all(isinstance(entry[k], list) for k in ("start", "end", "text")):
            raise UsageError(f"{path}: video {vid!r} needs 'start', 'end' and 'text' lists")
        lengths = {len(entry["start"]), len(entry["end"]), len(entry["text"])}
        if len(lengths) != 1:
            raise UsageError(f"{path}: video {vid!r} has start/end/text lists of unequal length")
        if entry["text"]:
            start, end = check_times(entry["start"], entry["end"], f"{path}: video {vid!r}")
            captions[str(vid)] = VideoCaptions(start, end, entry["text"])
    if not captions:
        raise UsageError(f"{path} holds no captions")
    return captions


def save_captions(path: str, captions: dict[str, dict[str, list]]) -> None:
    """Writes caption.json atomically (keys sorted, so the file is reproducible)."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(captions, f, ensure_ascii=False, sort_keys=True)


def read_video_list(path: str) -> list[str]:
    """Video ids from a text file (one per line) or a CSV with a `video_id` column.

    Raises:
        UsageError: missing or empty file.
    """
    if not os.path.isfile(path):
        raise UsageError(f"video list {path!r} not found")
    with open(path, encoding="utf-8") as f:
        rows = [line.strip() for line in f if line.strip()]
    if rows and "video_id" in rows[0].split(","):
        column = rows[0].split(",").index("video_id")
        rows = [row.split(",")[column].strip() for row in rows[1:]]
    if not rows:
        raise UsageError(f"video list {path!r} is empty")
    return rows
