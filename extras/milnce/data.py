"""Datasets of decoded clips: narrated training clips with K candidates, and evaluation windows."""

from __future__ import annotations

import os
import random
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from extras.milnce.captions import CaptionStore, candidate_window, clip_window
from extras.milnce.text import Tokenizer
from extras.milnce.video import READ_ERRORS, decode_windows, video_info
from extras.runtime.inputs import child_path
from y8m.errors import UsageError
from y8m.fileio import expand_pattern

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")


def video_id(path: str) -> str:
    """A video's id: its file name without the extension."""
    return os.path.splitext(os.path.basename(path))[0]


def list_videos(videos: str, video_root: str = "") -> list[str]:
    """Video files from a glob, or from a CSV whose `video_path` column is relative to
    `video_root` (the HowTo100M training list).

    Returns:
        Paths, in file order for a CSV and sorted for a glob.
    """
    if str(videos).endswith(".csv") and os.path.isfile(videos):
        frame = pd.read_csv(videos, keep_default_na=False, dtype=str)
        if "video_path" not in frame.columns:
            raise UsageError(f"{videos!r} needs a video_path column (relative to --video_root)")
        where = f"video_path in {videos}"
        return [child_path(video_root, p, what=where) for p in frame["video_path"]]
    return expand_pattern(videos, "videos")


def index_videos(root: str) -> dict[str, str]:
    """Maps video id -> path for every video file under `root` (searched recursively)."""
    if not os.path.isdir(root):
        raise UsageError(f"video root {root!r} is not a directory")
    found: dict[str, str] = {}
    for directory, _, names in os.walk(root):
        for name in sorted(names):
            if name.lower().endswith(VIDEO_EXTENSIONS):
                found.setdefault(video_id(name), os.path.join(directory, name))
    return found


def read_clip_csv(path: str, video_root: str) -> pd.DataFrame:
    """Clips to evaluate: a CSV with start, end, text and either video_path (relative to
    `video_root`) or video_id (looked up as <video_root>/**/<video_id>.<ext>).

    Returns:
        DataFrame with columns path, start, end, text (rows in file order).
    """
    if not os.path.isfile(path):
        raise UsageError(f"clip CSV {path!r} not found")
    frame = pd.read_csv(path, keep_default_na=False, dtype={"text": str})
    missing = [c for c in ("start", "end", "text") if c not in frame.columns]
    if missing:
        raise UsageError(f"{path!r} lacks columns {missing}: expected video_id,start,end,text")
    if "video_path" in frame.columns:
        paths = [
            child_path(video_root, p, what=f"video_path in {path}") for p in frame["video_path"]
        ]
    elif "video_id" in frame.columns:
        index = index_videos(video_root or ".")
        where = f"video_id in {path}"
        paths = [
            index.get(str(v)) or child_path(video_root, v, what=where) for v in frame["video_id"]
        ]
    else:
        raise UsageError(f"{path!r} needs a video_id or video_path column")
    return pd.DataFrame(
        {
            "path": paths,
            "start": frame["start"].astype(float),
            "end": frame["end"].astype(float),
            "text": frame["text"].astype(str),
        }
    )


def _rng(*parts) -> random.Random:
    # A str seed is hashed with SHA-512, so draws are the same in every worker and process.
    return random.Random("-".join(str(p) for p in parts))


class NarratedClips(Dataset):
    """One random narrated clip per video and epoch, with its K candidate captions.

    Item i draws a caption of video i uniformly, takes the K consecutive captions nearest to it
    in time (`candidate_window`) and decodes `num_frames` frames at `fps` from a clip inside the
    sampled caption's span (`clip_window`). Unreadable videos, and videos without captions,
    are replaced by another random video and counted in the item's `skipped`.

    Args:
        paths: video files.
        captions: their captions, by video id.
        tokenizer: maps captions to ids.
        num_candidates: K.
        num_frames, fps, size: clip shape (T frames, at fps, size x size).
        min_time: shortest caption span in seconds before widening.
        crop: "random" or "center"; flip: random horizontal flip; short_side: see
            `decode_windows`.
        seed: draws depend only on (seed, epoch, index), not on workers or ranks.
        max_retries: give up (UsageError) after this many unreadable videos in a row.

    Items are dicts: `video` uint8 [3, T, size, size], `text` int64 [K, L], `skipped` int,
    `skipped_paths` list of str.
    """

    def __init__(
        self,
        paths: Sequence[str],
        captions: CaptionStore,
        tokenizer: Tokenizer,
        num_candidates: int = 4,
        num_frames: int = 16,
        fps: float = 5.0,
        size: int = 224,
        min_time: float = 5.0,
        crop: str = "random",
        flip: bool = True,
        short_side: int | None = None,
        seed: int = 1,
        max_retries: int = 20,
    ):
        self.paths = list(paths)
        self.captions = captions
        self.tokenizer = tokenizer
        self.num_candidates = num_candidates
        self.num_frames = num_frames
        self.fps = fps
        self.size = size
        self.min_time = min_time
        self.crop = crop
        self.flip = flip
        self.short_side = short_side
        self.seed = seed
        self.max_retries = max_retries
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Changes the draws (call before iterating a new epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def _load(self, index: int, rng: random.Random) -> dict:
        path = self.paths[index]
        captions = self.captions[video_id(path)]
        if len(captions) == 0:
            raise ValueError(f"{path}: no captions")
        chosen = rng.randrange(len(captions))
        window = candidate_window(captions.start, captions.end, chosen, self.num_candidates)
        text = np.stack([self.tokenizer.encode(captions.text[i]) for i in window])  # (K, L)
        seek = clip_window(
            captions.start[chosen],
            captions.end[chosen],
            self.num_frames / self.fps,
            self.min_time,
            rng,
        )
        video = decode_windows(
            path,
            [seek],
            self.num_frames,
            self.fps,
            self.size,
            crop=self.crop,
            flip=self.flip,
            short_side=self.short_side,
            rng=rng,
        )[0]
        return {"video": torch.from_numpy(video), "text": torch.from_numpy(text)}

    def __getitem__(self, index: int) -> dict:
        rng = _rng(self.seed, self.epoch, index)
        skipped: list[str] = []
        for _ in range(self.max_retries):
            try:
                item = self._load(index, rng)
            except (*READ_ERRORS, KeyError, pd.errors.ParserError) as err:
                skipped.append(f"{self.paths[index]} ({type(err).__name__})")
                index = rng.randrange(len(self.paths))
                continue
            item["skipped"] = len(skipped)
            item["skipped_paths"] = skipped
            return item
        raise UsageError(
            f"{self.max_retries} videos in a row could not be read (last: {skipped[-1]}): "
            "check --videos and --captions"
        )


def collate_narrated(items: list[dict]) -> dict:
    """Stacks `NarratedClips` items: video [B, 3, T, H, W], text [B, K, L], skipped count."""
    return {
        "video": torch.stack([i["video"] for i in items]),
        "text": torch.stack([i["text"] for i in items]),
        "skipped": sum(i["skipped"] for i in items),
        "skipped_paths": [p for i in items for p in i["skipped_paths"]],
    }


class ClipWindows(Dataset):
    """Several evenly spaced windows of each clip (or of each whole video) for evaluation.

    Windows start at linspace(start, max(start, end - T / fps), num_windows); when start and end
    are None the whole video is covered. Frames are a centre square scaled to `size`. An
    unreadable video gives zeros and `ok=False`, so one broken file never stops an evaluation.

    Args:
        paths: video file per item.
        starts, ends: clip bounds in seconds per item (None entries = whole video).
        num_windows, num_frames, fps, size: windows per item and their shape; fps None means
            the video's own rate.

    Items are dicts: `video` uint8 [num_windows, 3, T, size, size], `ok` bool, `index` int.
    """

    def __init__(
        self,
        paths: Sequence[str],
        starts: Sequence[float | None] | None = None,
        ends: Sequence[float | None] | None = None,
        num_windows: int = 10,
        num_frames: int = 16,
        fps: float | None = 5.0,
        size: int = 224,
    ):
        self.paths = list(paths)
        self.starts = list(starts) if starts is not None else [None] * len(self.paths)
        self.ends = list(ends) if ends is not None else [None] * len(self.paths)
        self.num_windows = num_windows
        self.num_frames = num_frames
        self.fps = fps
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def window_starts(self, index: int) -> np.ndarray:
        """Start times of item `index`'s windows (reads the duration for whole videos)."""
        start, end = self.starts[index], self.ends[index]
        fps = self.fps
        if start is None or end is None or fps is None:
            duration, rate = video_info(self.paths[index])
            fps = fps or rate
            start = 0.0 if start is None else start
            end = duration if end is None else end
        seconds = self.num_frames / fps
        return np.linspace(start, max(start, end - seconds), self.num_windows)

    def __getitem__(self, index: int) -> dict:
        try:
            video = decode_windows(
                self.paths[index],
                self.window_starts(index),
                self.num_frames,
                self.fps,
                self.size,
                crop="center",
            )
            ok = True
        except READ_ERRORS:
            video = np.zeros(
                (self.num_windows, 3, self.num_frames, self.size, self.size), dtype=np.uint8
            )
            ok = False
        return {"video": torch.from_numpy(video), "ok": ok, "index": index}
