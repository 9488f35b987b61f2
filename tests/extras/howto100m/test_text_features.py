import json

import numpy as np
import pytest

from extras.howto100m.captions import load_captions, read_video_list
from extras.howto100m.features import (
    FeatureStore,
    clip_vector,
    grow_window,
    num_seconds,
    second_vectors,
)
from extras.howto100m.text import WordVectors, tokenize
from tests.extras.howto100m.synthetic import train_word2vec
from y8m.errors import UsageError


def test_tokenize_drops_stop_words_fillers_and_sound_tags():
    assert tokenize("[Music] Um, so we'll CUT the Tomato's skin, don't let it burn") == [
        "CUT",
        "Tomato's",
        "skin",
        "burn",
    ]
    assert tokenize("cut the skin", remove_stop_words=False) == ["cut", "the", "skin"]


@pytest.mark.parametrize("kind", ["bin", "txt", "kv"])
def test_word_vectors_encode(tmp_path, kind):
    name = "w.txt" if kind == "txt" else "w.bin"
    path = train_word2vec(str(tmp_path / name), binary=kind != "txt")
    if kind == "kv":
        from gensim.models import KeyedVectors

        KeyedVectors.load_word2vec_format(path, binary=True).save(str(tmp_path / "w.kv"))
        path = str(tmp_path / "w.kv")
    words = WordVectors.load(path)
    assert words.dim == 16
    out = words.encode(["the Apple and bread", "xyzzy", "apple " * 30], max_words=4)
    assert out.shape == (3, 4, 16) and out.dtype == np.float32
    apple, bread = words.vectors["apple"], words.vectors["bread"]
    assert np.allclose(out[0, 0], apple)  # "Apple" falls back to lower case
    assert np.allclose(out[0, 1], bread)
    assert not out[0, 2:].any()  # padding
    assert not out[1].any()  # out of vocabulary only
    assert np.allclose(out[2], np.tile(apple, (4, 1)))  # truncated to max_words


def test_word_vectors_missing_file(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        WordVectors.load(str(tmp_path / "none.bin"))
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"3 4\nnot really binary")
    with pytest.raises(UsageError, match="cannot read"):
        WordVectors.load(str(bad))


def test_grow_window_takes_the_shorter_side():
    # Captions [0,2] [2,4] [4,5] [10,12] [12,13]
    start = np.array([0.0, 2, 4, 10, 12])
    end = np.array([2.0, 4, 5, 12, 13])
    assert grow_window(start, end, 2, min_time=0) == (2, 2)
    # left gives 5 - 2 = 3 s, right gives 12 - 4 = 8 s: go left.
    assert grow_window(start, end, 2, min_time=3) == (1, 2)
    assert grow_window(start, end, 2, min_time=5) == (0, 2)
    assert grow_window(start, end, 0, min_time=5) == (0, 2)  # at the start: right only
    assert grow_window(start, end, 4, min_time=100) == (0, 4)  # stops at the video
    # Caption 3 has no word: right is shorter (3 s) but adds none, so left follows.
    words = [1, 1, 1, 0, 0]
    assert grow_window(start, end, 3, min_time=0, num_words=words, min_words=1) == (2, 4)


def test_clip_vector_maxpools_overlapping_rows_and_normalises():
    rng = np.random.default_rng(0)
    f2 = rng.random((10, 3)).astype(np.float32)  # 1 row per second
    f3 = rng.random((15, 2)).astype(np.float32)  # 1.5 rows per second
    vec = clip_vector([(f2, 1.0), (f3, 1.5)], start=2.0, end=4.5)
    a = f2[2:5].max(0)  # rows 2, 3, 4 meet [2, 4.5)
    b = f3[3:7].max(0)  # rows 3..6 span [2, 4.67)
    assert np.allclose(vec, np.concatenate([a / np.linalg.norm(a), b / np.linalg.norm(b)]))
    late = clip_vector([(f2, 1.0)], start=30, end=40)  # past the end: the last row
    assert np.allclose(late, f2[-1] / np.linalg.norm(f2[-1]))
    assert num_seconds([(f2, 1.0), (f3, 1.5)]) == 10
    per_second = second_vectors([(f2, 1.0)])
    assert per_second.shape == (10, 3)
    assert np.allclose(per_second[4], f2[4] / np.linalg.norm(f2[4]))


def test_feature_store(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    np.save(tmp_path / "a" / "v1.npy", np.ones((4, 3), np.float32))
    np.save(tmp_path / "b" / "v1.npy", np.ones((6, 5), np.float32))
    np.save(tmp_path / "a" / "v2.npy", np.ones(4, np.float32))
    store = FeatureStore(str(tmp_path / "a"), str(tmp_path / "b"))
    assert store.has("v1") and not store.has("v2")
    assert store.video_dim("v1") == 8
    with pytest.raises(UsageError, match=r"\[T, D\]"):
        FeatureStore(str(tmp_path / "a")).load("v2")
    with pytest.raises(UsageError, match="does not exist"):
        FeatureStore(str(tmp_path / "nope"))


def test_caption_json_and_video_list(tmp_path):
    path = tmp_path / "caption.json"
    path.write_text(json.dumps({"v": {"start": [0, 1], "end": [1, 2], "text": ["a", "b"]}}))
    caps = load_captions(str(path))
    assert len(caps["v"]) == 2 and caps["v"].end.tolist() == [1.0, 2.0]
    path.write_text(json.dumps({"v": {"start": [0], "end": [1, 2], "text": ["a"]}}))
    with pytest.raises(UsageError, match="unequal"):
        load_captions(str(path))
    path.write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        load_captions(str(path))
    listing = tmp_path / "split.csv"
    listing.write_text("video_id,task\nv1,3\nv2,4\n")
    assert read_video_list(str(listing)) == ["v1", "v2"]
