"""Caption files, candidate windows and clip windows."""

import json
import random

import numpy as np
import pytest

pytest.importorskip("torch")

from extras.milnce.captions import (  # noqa: E402
    CaptionStore,
    candidate_window,
    clip_window,
    eval_window_starts,
)
from y8m.errors import UsageError  # noqa: E402


def test_csv_directory_and_json_give_the_same_captions(tmp_path):
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "vid1.csv").write_text("start,end,text\n0.5,2.0,cut the onion\n2.0,4.5,\n")
    (tmp_path / "caption.json").write_text(
        json.dumps(
            {"vid1": {"start": [0.5, 2.0], "end": [2.0, 4.5], "text": ["cut the onion", ""]}}
        )
    )
    for source in (tmp_path / "csv", tmp_path / "caption.json"):
        store = CaptionStore(str(source))
        assert "vid1" in store and "vid2" not in store
        captions = store["vid1"]
        assert len(captions) == 2
        np.testing.assert_array_equal(captions.start, [0.5, 2.0])
        np.testing.assert_array_equal(captions.end, [2.0, 4.5])
        assert captions.text == ["cut the onion", ""]  # empty text stays a string, not NaN
    assert sorted(CaptionStore(str(tmp_path / "csv")).all_text()) == ["", "cut the onion"]


def test_bad_caption_sources(tmp_path):
    with pytest.raises(UsageError):
        CaptionStore(str(tmp_path / "missing"))
    (tmp_path / "c.txt").write_text("x")
    with pytest.raises(UsageError):
        CaptionStore(str(tmp_path / "c.txt"))
    (tmp_path / "bad.json").write_text(json.dumps({"v": {"start": [0]}}))
    with pytest.raises(UsageError):
        CaptionStore(str(tmp_path / "bad.json"))


def test_candidate_window_grows_towards_the_nearer_caption():
    # Gaps: captions 2 and 3 are close, 3 and 4 far apart.
    start = np.array([0.0, 10.0, 20.0, 21.0, 40.0, 41.0, 42.0])
    end = np.array([5.0, 15.0, 21.0, 22.0, 41.0, 42.0, 43.0])
    # From 3: adding 2 spans 20..22 (2 s) versus adding 4 spans 21..41 (20 s) -> left.
    assert candidate_window(start, end, 3, 2) == [2, 3]
    # From 4: adding 3 spans 21..41 (20 s), adding 5 spans 40..42 (2 s) -> right, then right.
    assert candidate_window(start, end, 4, 3) == [4, 5, 6]
    # From 1: adding 0 spans 0..15 (15 s), adding 2 spans 10..21 (11 s) -> right, right.
    assert candidate_window(start, end, 1, 3) == [1, 2, 3]
    # Reaching the first caption snaps to [0, K); reaching the last, to the last K.
    assert candidate_window(start, end, 0, 3) == [0, 1, 2]
    assert candidate_window(start, end, 6, 3) == [4, 5, 6]
    near_start = np.array([0.0, 1.0, 50.0, 100.0])
    assert candidate_window(near_start, near_start + 1, 1, 3) == [0, 1, 2]  # left, then snap
    assert candidate_window(start, end, 5, 1) == [5]
    # Fewer captions than K: the last one repeats.
    assert candidate_window(start[:2], end[:2], 1, 4) == [0, 1, 1, 1]


def test_clip_window_widens_short_captions():
    rng = random.Random(0)
    starts = [clip_window(10.0, 11.0, 3.2, 5.0, rng) for _ in range(200)]
    # 1 s caption widened to 8..13 s, so a 3.2 s clip starts in [8, 9.8].
    assert min(starts) >= 8.0 and max(starts) <= 9.8
    assert max(starts) - min(starts) > 1.5
    # Near the start of the video the widened span is clipped at 0.
    assert all(0.0 <= clip_window(0.5, 1.0, 3.2, 5.0, rng) <= 1.8 for _ in range(50))
    # A clip longer than the span starts at the span's start.
    assert clip_window(3.0, 9.0, 10.0, 5.0, rng) == 3.0


def test_eval_windows_cover_the_clip():
    np.testing.assert_allclose(eval_window_starts(10.0, 20.0, 3.2, 5), np.linspace(10.0, 16.8, 5))
    np.testing.assert_allclose(eval_window_starts(10.0, 11.0, 3.2, 3), [10.0, 10.0, 10.0])
