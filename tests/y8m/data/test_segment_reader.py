"""The 2019 segment reader against a numpy re-computation from the raw records."""

import numpy as np
import pytest

from y8m.data import read_segment_examples, records, specs
from y8m.data.readers import iterate
from y8m.errors import UsageError

RELEASE = specs.release(2019)
C = 40  # a small label width keeps the dense [B, C] tensors cheap


def _ratings(classes, starts, scores):
    return {
        specs.SEGMENT_LABELS_KEY: classes,
        specs.SEGMENT_START_TIMES_KEY: starts,
        specs.SEGMENT_SCORES_KEY: scores,
    }


# video id -> (frames, ratings); v001 rates two classes at start 5 and a segment that runs
# past the end of its 12-frame video (start 10: frames 10, 11 only).
VIDEOS = {
    "v000": (20, _ratings([3, 7, 3], [0, 5, 15], [1.0, 0.0, 0.0])),
    "v001": (12, _ratings([2, 9, 4], [5, 5, 10], [1.0, 0.0, 1.0])),
    "v002": (7, _ratings([11], [0], [1.0])),
}


def _write(path, videos, seed=0, audio_short=False):
    rng = np.random.default_rng(seed)
    raw, recs = {}, []
    for vid, (n, ratings) in videos.items():
        frames = {
            "rgb": rng.integers(0, 256, (n, 1024), dtype=np.uint8),
            "audio": rng.integers(0, 256, (n - 1 if audio_short else n, 128), dtype=np.uint8),
        }
        raw[vid] = (frames, ratings)
        recs.append(records.encode_frame_example(vid, [1, 2], frames, RELEASE, ratings))
    records.write_tfrecord(str(path), recs)
    return raw


def _expected(raw) -> dict:
    """segment id -> expected example, computed with numpy from the raw records."""
    out = {}
    for vid, (frames, r) in raw.items():
        n = len(frames["rgb"])
        for cls, start, score in zip(
            r[specs.SEGMENT_LABELS_KEY],
            r[specs.SEGMENT_START_TIMES_KEY],
            r[specs.SEGMENT_SCORES_KEY],
        ):
            key = specs.segment_id(vid, start)
            if key not in out:
                ex = {"num_frames": min(specs.SEGMENT_SIZE, n - start)}
                for name, q in frames.items():
                    x = np.zeros((specs.SEGMENT_SIZE, q.shape[1]), np.float32)
                    part = q[start : start + specs.SEGMENT_SIZE]
                    x[: len(part)] = specs.dequantize(part)
                    ex[name] = x
                ex["labels"] = np.zeros(C, np.float32)
                ex["label_weights"] = np.zeros(C, np.float32)
                out[key] = ex
            out[key]["labels"][cls] = score
            out[key]["label_weights"][cls] = 1.0
    return out


def _examples(ds) -> list[dict]:
    rows = []
    for b in iterate(ds, "test"):
        for j in range(len(b["id"])):
            rows.append({k: v[j] for k, v in b.items()})
    return rows


def test_examples_match_numpy(tmp_path):
    raw = _write(tmp_path / "validate00.tfrecord", VIDEOS)
    ds = read_segment_examples(str(tmp_path / "*.tfrecord"), num_classes=C, batch_size=3)
    got = _examples(ds)
    want = _expected(raw)
    # one example per (video, start), in record order and first-rating order
    assert [g["id"].decode() for g in got] == list(want)
    assert len(got) == 6
    for g in got:
        w = want[g["id"].decode()]
        assert g["num_frames"] == w["num_frames"]
        for k in ("rgb", "audio", "labels", "label_weights"):
            np.testing.assert_allclose(g[k], w[k], atol=1e-6, err_msg=k)
    both = {g["id"].decode(): g for g in got}["v001:5"]  # two classes rated at one start
    assert np.flatnonzero(both["label_weights"]).tolist() == [2, 9]
    assert np.flatnonzero(both["labels"]).tolist() == [2]
    end = {g["id"].decode(): g for g in got}["v001:10"]  # video ends inside the segment
    assert end["num_frames"] == 2 and not end["rgb"][2:].any()  # padding exactly 0.0


def test_batch_keys_dtypes_and_shapes(tmp_path):
    _write(tmp_path / "validate00.tfrecord", VIDEOS)
    ds = read_segment_examples(str(tmp_path / "*.tfrecord"), num_classes=C, batch_size=4)
    batches = list(iterate(ds, "test"))
    assert [len(b["id"]) for b in batches] == [4, 2]
    b = batches[0]
    assert set(b) == {"id", "rgb", "audio", "num_frames", "labels", "label_weights"}
    assert b["id"].dtype == object
    assert b["rgb"].shape == (4, 5, 1024) and b["rgb"].dtype == np.float32
    assert b["audio"].shape == (4, 5, 128) and b["audio"].dtype == np.float32
    assert b["num_frames"].dtype == np.int32
    assert b["labels"].shape == b["label_weights"].shape == (4, C)
    assert b["labels"].dtype == b["label_weights"].dtype == np.float32
    spec = ds.element_spec
    assert spec["rgb"].shape.as_list() == [None, 5, 1024]
    # the default width is the release's
    full = read_segment_examples(str(tmp_path / "*.tfrecord"), feature_names="rgb", batch_size=2)
    first = next(iterate(full, "test"))
    assert set(first) == {"id", "rgb", "num_frames", "labels", "label_weights"}
    assert first["labels"].shape == (2, RELEASE.num_classes)


def test_shorter_audio_stream_is_zero_padded(tmp_path):
    raw = _write(tmp_path / "validate00.tfrecord", VIDEOS, audio_short=True)
    got = _examples(read_segment_examples(str(tmp_path / "*.tfrecord"), num_classes=C))
    want = _expected(raw)
    for g in got:
        np.testing.assert_allclose(g["audio"], want[g["id"].decode()]["audio"], atol=1e-6)


def test_file_without_ratings_is_named(tmp_path):
    _write(tmp_path / "validate00.tfrecord", VIDEOS)
    bad = tmp_path / "train00.tfrecord"
    frames = {"rgb": np.zeros((6, 1024), np.uint8), "audio": np.zeros((6, 128), np.uint8)}
    records.write_tfrecord(str(bad), [records.encode_frame_example("t0", [1], frames, RELEASE)])
    with pytest.raises(UsageError, match=r"train00\.tfrecord.*no segment ratings"):
        read_segment_examples(str(tmp_path / "*.tfrecord"), num_classes=C)
    with pytest.raises(UsageError, match="2019"):
        read_segment_examples(str(tmp_path / "validate00.tfrecord"), version=2018)


def test_unrated_record_deeper_in_a_file_is_skipped(tmp_path):
    videos = dict(VIDEOS)
    videos["v003"] = (9, None)
    raw = _write(tmp_path / "validate00.tfrecord", videos)
    got = _examples(read_segment_examples(str(tmp_path / "*.tfrecord"), num_classes=C))
    del raw["v003"]
    assert [g["id"].decode() for g in got] == list(_expected(raw))


def test_shuffle_repeat_and_shard(tmp_path):
    _write(tmp_path / "validate00.tfrecord", VIDEOS, seed=1)
    _write(tmp_path / "validate01.tfrecord", {f"w{k}": v for k, v in VIDEOS.items()}, seed=2)
    pattern = str(tmp_path / "*.tfrecord")
    plain = sorted(g["id"] for g in _examples(read_segment_examples(pattern, num_classes=C)))
    assert len(plain) == 12

    def shuffled(seed):
        ds = read_segment_examples(pattern, num_classes=C, shuffle=True, seed=seed, batch_size=5)
        return [g["id"] for g in _examples(ds)]

    a = shuffled(7)
    # Every segment exactly once per epoch. (The order is not asserted: parsing runs in parallel
    # with deterministic=False when shuffling, so it depends on thread timing too.)
    assert sorted(a) == plain

    looped = read_segment_examples(pattern, num_classes=C, repeat=True, shuffle=True, batch_size=5)
    ids = [x for b in looped.take(6) for x in b["id"].numpy()]
    # Past one epoch (30 > 12 segments), drawn from the same segments; with the shuffle buffer
    # spanning epochs, 30 draws need not cover all 12.
    assert len(ids) == 30 and set(ids) <= set(plain)

    halves = [
        {g["id"] for g in _examples(read_segment_examples(pattern, num_classes=C, shard=(2, i)))}
        for i in range(2)
    ]
    assert len(halves[0]) == len(halves[1]) == 6 and not halves[0] & halves[1]


def test_synthetic_validate_split(tmp_path):
    from y8m.data.readers import read_segment_ratings
    from y8m.data.synth import synthesize

    synthesize(str(tmp_path), version=2019, level="frame", videos=16, num_classes=C, progress=False)
    pattern = str(tmp_path / "frame" / "validate*.tfrecord")
    ratings = read_segment_ratings(pattern)
    got = _examples(read_segment_examples(pattern, num_classes=C, batch_size=16))
    keys = [specs.segment_id(v, s) for v, s in zip(ratings["id"], ratings["start_time"])]
    assert [g["id"].decode() for g in got] == list(dict.fromkeys(keys))
    weights = {(g["id"].decode(), c) for g in got for c in np.flatnonzero(g["label_weights"])}
    assert weights == {(k, c) for k, c in zip(keys, ratings["class"])}
    positives = {(g["id"].decode(), c) for g in got for c in np.flatnonzero(g["labels"])}
    rated = ratings["score"] > 0
    assert positives == {(k, c) for k, c, r in zip(keys, ratings["class"], rated) if r}


def test_rated_class_beyond_num_classes_is_a_usage_error(tmp_path):
    _write(tmp_path / "validate00.tfrecord", {"v0": (6, _ratings([50], [0], [1.0]))})
    pattern = str(tmp_path / "*.tfrecord")
    with pytest.raises(UsageError, match="labels >= 40 classes"):
        list(iterate(read_segment_examples(pattern, num_classes=C), pattern))
