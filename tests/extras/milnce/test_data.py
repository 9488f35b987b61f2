"""Datasets: narrated training clips (with skipping), evaluation windows, clip and video lists."""

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("av")

from extras.milnce.captions import CaptionStore  # noqa: E402
from extras.milnce.data import (  # noqa: E402
    ClipWindows,
    NarratedClips,
    collate_narrated,
    list_videos,
    read_clip_csv,
)
from extras.milnce.text import Tokenizer  # noqa: E402
from extras.milnce.video import write_test_video  # noqa: E402
from y8m.errors import UsageError  # noqa: E402

LEVELS = {"dark": 40, "light": 200}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two readable 3 s videos (dark, light), one broken file, and one video without captions."""
    root = tmp_path_factory.mktemp("corpus")
    (root / "videos" / "sub").mkdir(parents=True)
    (root / "captions").mkdir()
    for name, level in LEVELS.items():
        frames = np.full((30, 40, 48, 3), level, dtype=np.uint8)
        write_test_video(str(root / "videos" / "sub" / f"{name}.mp4"), frames, fps=10)
        pd.DataFrame(
            {
                "start": [0.0, 1.0, 2.0],
                "end": [1.0, 2.0, 3.0],
                "text": [f"{name} one", f"{name} two", name],
            }
        ).to_csv(root / "captions" / f"{name}.csv", index=False)
    (root / "videos" / "broken.mp4").write_bytes(b"garbage" * 50)
    pd.DataFrame({"start": [0.0], "end": [1.0], "text": ["broken"]}).to_csv(
        root / "captions" / "broken.csv", index=False
    )
    write_test_video(str(root / "videos" / "silent.mp4"), np.zeros((5, 32, 32, 3), np.uint8))
    return root


def _dataset(root, paths, **kwargs):
    tokenizer = Tokenizer(["dark", "light", "one", "two"], max_words=3)
    options = dict(num_candidates=2, num_frames=4, fps=5, size=32, min_time=1.0, seed=3)
    options.update(kwargs)
    return NarratedClips(paths, CaptionStore(str(root / "captions")), tokenizer, **options)


def test_items_pair_video_with_candidate_captions(corpus):
    paths = [str(corpus / "videos" / "sub" / f"{n}.mp4") for n in LEVELS]
    dataset = _dataset(corpus, paths)
    for index, name in enumerate(LEVELS):
        item = dataset[index]
        assert item["video"].shape == (3, 4, 32, 32) and item["video"].dtype == torch.uint8
        assert item["text"].shape == (2, 3) and item["text"].dtype == torch.int64
        assert item["skipped"] == 0
        # Every candidate caption names the video's own level; the frames show it.
        assert all(row[0] == 1 + index for row in item["text"].tolist())
        assert abs(item["video"].float().mean().item() - LEVELS[name]) < 8
    # Draws depend only on (seed, epoch, index).
    again = _dataset(corpus, paths)
    torch.testing.assert_close(again[1]["text"], dataset[1]["text"])
    torch.testing.assert_close(again[1]["video"], dataset[1]["video"])


def test_broken_videos_are_replaced_and_counted(corpus):
    paths = [str(corpus / "videos" / "broken.mp4"), str(corpus / "videos" / "sub" / "dark.mp4")]
    dataset = _dataset(corpus, paths)
    item = dataset[0]
    assert item["skipped"] >= 1
    assert all("broken.mp4" in p for p in item["skipped_paths"])
    assert item["video"].float().mean().item() == pytest.approx(LEVELS["dark"], abs=8)
    batch = collate_narrated([dataset[0], dataset[1]])
    assert batch["video"].shape == (2, 3, 4, 32, 32) and batch["text"].shape == (2, 2, 3)
    assert batch["skipped"] == item["skipped"]
    # Nothing readable at all is a usage error, not an endless loop.
    with pytest.raises(UsageError):
        _dataset(corpus, [str(corpus / "videos" / "broken.mp4")], max_retries=3)[0]


def test_clip_windows_flag_unreadable_videos(corpus):
    dark = str(corpus / "videos" / "sub" / "dark.mp4")
    dataset = ClipWindows(
        [dark, str(corpus / "videos" / "broken.mp4"), dark],
        starts=[0.5, 0.0, None],
        ends=[2.5, 1.0, None],
        num_windows=3,
        num_frames=4,
        fps=5,
        size=32,
    )
    np.testing.assert_allclose(dataset.window_starts(0), [0.5, 1.1, 1.7])  # to end - 0.8 s
    np.testing.assert_allclose(dataset.window_starts(2), [0.0, 1.1, 2.2], atol=0.11)
    good, bad = dataset[0], dataset[1]
    assert good["ok"] and good["video"].shape == (3, 3, 4, 32, 32)
    assert not bad["ok"] and bad["video"].shape == (3, 3, 4, 32, 32) and bad["video"].max() == 0


def test_clip_csv_by_id_or_path_and_video_lists(corpus, tmp_path):
    by_id = tmp_path / "clips.csv"
    pd.DataFrame(
        {"video_id": ["light", "dark"], "start": [0, 1], "end": [2, 3], "text": ["a", "b"]}
    ).to_csv(by_id, index=False)
    table = read_clip_csv(str(by_id), str(corpus / "videos"))
    assert table["path"].tolist() == [
        str(corpus / "videos" / "sub" / "light.mp4"),
        str(corpus / "videos" / "sub" / "dark.mp4"),
    ]
    by_path = tmp_path / "paths.csv"
    pd.DataFrame({"video_path": ["sub/dark.mp4"], "start": [0], "end": [1], "text": ["x"]}).to_csv(
        by_path, index=False
    )
    assert read_clip_csv(str(by_path), str(corpus / "videos"))["path"].tolist() == [
        str(corpus / "videos" / "sub" / "dark.mp4")
    ]
    with pytest.raises(UsageError):
        pd.DataFrame({"video_id": ["x"], "start": [0]}).to_csv(tmp_path / "bad.csv", index=False)
        read_clip_csv(str(tmp_path / "bad.csv"), str(corpus))
    listed = tmp_path / "videos.csv"
    pd.DataFrame({"video_path": ["sub/dark.mp4", "broken.mp4"]}).to_csv(listed, index=False)
    assert list_videos(str(listed), str(corpus / "videos")) == [
        str(corpus / "videos" / "sub" / "dark.mp4"),
        str(corpus / "videos" / "broken.mp4"),
    ]
    assert len(list_videos(str(corpus / "videos" / "*.mp4"))) == 2
    with pytest.raises(UsageError):
        list_videos(str(corpus / "nothing" / "*.mp4"))
