"""Round trips through the official record formats and the tf.data readers."""

import numpy as np
import pytest

from y8m.data import read_frames, read_labels, read_segment_ratings, read_videos, records, specs
from y8m.data.readers import CorruptReport, iterate
from y8m.errors import UsageError


def _write_frame_file(path, release, videos, seed=0, segments=None):
    rng = np.random.default_rng(seed)
    truth = {}
    recs = []
    for i, n in enumerate(videos):
        frames = {
            "rgb": rng.integers(0, 256, (n, 1024), dtype=np.uint8),
            "audio": rng.integers(0, 256, (n, 128), dtype=np.uint8),
        }
        labels = sorted(rng.choice(release.num_classes, 3, replace=False).tolist())
        vid = f"v{i:03d}"
        truth[vid] = (labels, frames)
        recs.append(records.encode_frame_example(vid, labels, frames, release, segments))
    records.write_tfrecord(str(path), recs)
    return truth


def _batches(ds):
    return list(iterate(ds, "test"))


@pytest.mark.parametrize("version", [2017, 2018, 2019])
def test_frame_round_trip_ordered(tmp_path, version):
    release = specs.release(version)
    seg = None
    if version == 2019:
        seg = {
            specs.SEGMENT_LABELS_KEY: [3, 7],
            specs.SEGMENT_START_TIMES_KEY: [0, 5],
            specs.SEGMENT_SCORES_KEY: [1.0, 0.0],
        }
    truth = _write_frame_file(tmp_path / "train0000.tfrecord", release, [7, 3, 12], segments=seg)
    ds = read_frames(str(tmp_path / "*.tfrecord"), version=version, batch_size=2, max_frames=10)
    got = {}
    for b in _batches(ds):
        assert b["rgb"].shape[1] == b["num_frames"].max() <= 10  # padded to the batch's longest
        assert b["rgb"].shape[2] == 1024 and b["audio"].shape[2] == 128
        assert b["labels"].shape[1] == release.num_classes
        for j, vid in enumerate(b["id"]):
            got[vid.decode()] = {k: b[k][j] for k in b}
    assert set(got) == set(truth)
    for vid, (labels, frames) in truth.items():
        g = got[vid]
        n = min(len(frames["rgb"]), 10)  # truncated to max_frames, like the official reader
        assert g["num_frames"] == n
        np.testing.assert_allclose(g["rgb"][:n], specs.dequantize(frames["rgb"][:n]), atol=1e-6)
        np.testing.assert_allclose(g["audio"][:n], specs.dequantize(frames["audio"][:n]), atol=1e-6)
        assert not g["rgb"][n:].any()  # padding is exactly 0.0, not dequantised 0
        assert np.flatnonzero(g["labels"]).tolist() == labels
    if version == 2019:
        ratings = read_segment_ratings(str(tmp_path / "*.tfrecord"))
        assert len(ratings) == 6 and set(ratings["start_time"]) == {0, 5}


def test_random_and_uniform_sampling_draw_only_real_frames(tmp_path):
    release = specs.release(2018)
    truth = _write_frame_file(tmp_path / "a.tfrecord", release, [4, 9])
    for mode in ("random", "uniform"):
        ds = read_frames(
            str(tmp_path / "a.tfrecord"), sample=mode, num_samples=50, batch_size=2, seed=3
        )
        (b,) = _batches(ds)
        assert b["rgb"].shape == (2, 50, 1024)
        for j, vid in enumerate(b["id"]):
            real = specs.dequantize(truth[vid.decode()][1]["rgb"])
            assert b["num_frames"][j] == 50
            # every sampled row is one of the video's real frames
            d = np.abs(b["rgb"][j][:, None, :] - real[None, :, :]).max(-1)
            assert (d.min(1) < 1e-6).all()
            if mode == "random":  # with replacement: all of a short video's frames appear
                assert len(set(d.argmin(1))) == len(real)
            else:  # evenly spaced, in temporal order
                assert (np.diff(d.argmin(1)) >= 0).all()


def test_video_level_round_trip_and_labels(tmp_path):
    release = specs.release(2018)
    rng = np.random.default_rng(0)
    recs, truth = [], {}
    for i in range(5):
        feats = {"mean_rgb": rng.normal(size=1024), "mean_audio": rng.normal(size=128)}
        truth[f"x{i}"] = ([i, 100 + i], feats)
        recs.append(records.encode_video_example(f"x{i}", [i, 100 + i], feats, release))
    records.write_tfrecord(str(tmp_path / "v.tfrecord"), recs)
    (b,) = _batches(read_videos(str(tmp_path / "v.tfrecord"), batch_size=8))
    for j, vid in enumerate(b["id"]):
        labels, feats = truth[vid.decode()]
        np.testing.assert_allclose(b["mean_rgb"][j], feats["mean_rgb"], rtol=1e-6)
        assert np.flatnonzero(b["labels"][j]).tolist() == labels
    df = read_labels(str(tmp_path / "v.tfrecord"))
    assert dict(zip(df["id"], df["labels"])) == {k: v[0] for k, v in truth.items()}


def test_selected_feature_only(tmp_path):
    _write_frame_file(tmp_path / "a.tfrecord", specs.release(2018), [5])
    (b,) = _batches(read_frames(str(tmp_path / "a.tfrecord"), feature_names="audio", batch_size=4))
    assert "audio" in b and "rgb" not in b


def test_truncated_file_is_named_and_can_be_skipped(tmp_path):
    _write_frame_file(tmp_path / "good.tfrecord", specs.release(2018), [5, 5])
    _write_frame_file(tmp_path / "bad.tfrecord", specs.release(2018), [5, 5, 5])
    data = (tmp_path / "bad.tfrecord").read_bytes()
    (tmp_path / "bad.tfrecord").write_bytes(data[: len(data) - 100])
    with pytest.raises(UsageError, match="bad.tfrecord"):
        read_frames(str(tmp_path / "*.tfrecord"))
    report = CorruptReport()
    ds = read_frames(str(tmp_path / "*.tfrecord"), skip_corrupt=True, report=report, batch_size=10)
    (b,) = _batches(ds)
    assert len(b["id"]) == 4  # 2 good + the 2 complete records before the damage
    assert "bad.tfrecord" in report.summary()


def test_corrupted_payload_names_the_file(tmp_path):
    _write_frame_file(tmp_path / "ok.tfrecord", specs.release(2018), [5])
    _write_frame_file(tmp_path / "flip.tfrecord", specs.release(2018), [5])
    data = bytearray((tmp_path / "flip.tfrecord").read_bytes())
    data[200] ^= 0xFF  # inside the payload: framing intact, CRC wrong
    (tmp_path / "flip.tfrecord").write_bytes(bytes(data))
    pattern = str(tmp_path / "*.tfrecord")
    with pytest.raises(UsageError, match="flip.tfrecord"):
        list(iterate(read_frames(pattern), pattern))


def test_no_matching_files_and_bad_options(tmp_path):
    with pytest.raises(UsageError, match="no TFRecord files match"):
        read_frames(str(tmp_path / "nothing*.tfrecord"))
    _write_frame_file(tmp_path / "a.tfrecord", specs.release(2018), [5])
    with pytest.raises(UsageError, match="sampling"):
        read_frames(str(tmp_path / "a.tfrecord"), sample="sometimes")
