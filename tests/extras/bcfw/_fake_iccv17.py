"""A tiny ICCV17-layout structure written with scipy.io.savemat, for loader and CLI tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

TRACKS = (30, 25, 35)  # tracks per movie
OFFSET = 300_000  # frame offset between movies, as in the real files
FACE_ROWS = 50  # rows of the person assignment; track_map's sentinel is FACE_ROWS + 1


def write_fake_iccv17(directory: Path, seed: int = 0) -> dict:
    """Writes bags.mat, data_block.mat and track_map.mat; returns the ground truth (0-based)."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    frames, blocks, bags, movie_bag = [], [], [], []
    start = 0
    for m, n in enumerate(TRACKS):
        first = np.sort(rng.integers(0, 5000, size=n)) + OFFSET * m
        frames.append(np.column_stack([first, first + rng.integers(8, 400, size=n)]))
        blocks.append(np.arange(start, start + n))
        ids = []
        for _ in range(4):
            lo = int(rng.integers(0, 4500)) + OFFSET * m
            bags.append((int(rng.integers(2, 15)), int(rng.integers(0, 3)), (lo, lo + 300)))
            ids.append(len(bags))
        bags.append((3, 0, (OFFSET * m + 200_000, OFFSET * m + 200_100)))  # holds no track
        ids.append(len(bags))
        movie_bag.append(ids)
        start += n
    frames = np.vstack(frames)
    record = np.dtype([("action", "O"), ("people", "O"), ("f", "O")])
    merge_bag = np.empty((1, len(bags)), dtype=record)
    for k, (action, people, f) in enumerate(bags):
        merge_bag[0, k] = (
            np.array([[action]], np.uint8),
            np.array([[people]], np.uint8),
            np.array([f], np.int32),
        )
    scipy.io.savemat(
        directory / "bags.mat",
        {
            "merge_bag": merge_bag,
            "movie_bag": _cell([np.array([ids], np.uint16) for ids in movie_bag]),
            "tframes_total": frames.astype(np.int32),
        },
    )
    scipy.io.savemat(
        directory / "data_block.mat",
        {"movie_block": _cell([np.array([b + 1], np.uint16) for b in blocks])},
    )
    track_map = rng.integers(1, FACE_ROWS + 2, size=(frames.shape[0], 1)).astype(np.int32)
    scipy.io.savemat(directory / "track_map.mat", {"track_map": track_map})
    return {
        "frames": frames,
        "blocks": blocks,
        "bags": [
            (a - 1, p - 1, f, m)
            for m, ids in enumerate(movie_bag)
            for a, p, f in (bags[k - 1] for k in ids)
        ],
        "track_map": track_map.ravel() - 1,
    }


def _cell(items: list[np.ndarray]) -> np.ndarray:
    cell = np.empty((1, len(items)), dtype=object)
    for i, item in enumerate(items):
        cell[0, i] = item
    return cell
