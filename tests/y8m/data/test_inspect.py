"""y8m inspect on small hand-written shards: unlabelled records, release detection, problems."""

import numpy as np
import pytest
import tensorflow as tf

from y8m.data import read_frames, read_labels, read_videos, records, specs
from y8m.data.inspect import inspect_records
from y8m.data.readers import iterate

RATINGS = {
    specs.SEGMENT_LABELS_KEY: [3],
    specs.SEGMENT_START_TIMES_KEY: [0],
    specs.SEGMENT_SCORES_KEY: [1.0],
}


def frame_record(vid, release, frames=6, audio_frames=None, labels=(1, 2), segments=None):
    rng = np.random.default_rng(len(vid))
    audio_frames = frames if audio_frames is None else audio_frames
    data = {
        "rgb": rng.integers(0, 256, (frames, 1024), dtype=np.uint8),
        "audio": rng.integers(0, 256, (audio_frames, 128), dtype=np.uint8),
    }
    return records.encode_frame_example(vid, list(labels), data, release, segments)


def video_record(vid, release, labels=(1, 2)):
    features = {"mean_rgb": np.zeros(1024), "mean_audio": np.zeros(128)}
    return records.encode_video_example(vid, list(labels), features, release)


def without_labels(raw, frame_level=True):
    """The record with its `labels` context key removed (as in some test shards)."""
    proto = (tf.train.SequenceExample if frame_level else tf.train.Example).FromString(raw)
    context = proto.context.feature if frame_level else proto.features.feature
    del context[specs.LABELS_KEY]
    return proto.SerializeToString()


def inspect(path):
    return inspect_records(str(path), progress=False)


def test_records_without_labels_are_valid_and_readable(tmp_path):
    release = specs.release(2018)
    frame = tmp_path / "test_frame.tfrecord"
    records.write_tfrecord(
        str(frame),
        [without_labels(frame_record("a", release)), frame_record("b", release, labels=[])],
    )
    video = tmp_path / "test_video.tfrecord"
    records.write_tfrecord(str(video), [without_labels(video_record("c", release), False)])
    report = inspect(frame)
    assert report["valid"], report["problems"]
    assert report["frame_level"] and report["unlabelled_videos"] == 2
    report = inspect(video)
    assert report["valid"], report["problems"]
    assert not report["frame_level"] and report["unlabelled_videos"] == 1
    # The readers accept them too, with no labels.
    assert read_labels(str(frame))["labels"].map(len).tolist() == [0, 0]
    (batch,) = list(iterate(read_frames(str(frame), batch_size=4), "frames"))
    assert batch["labels"].shape == (2, release.num_classes) and not batch["labels"].any()
    (batch,) = list(iterate(read_videos(str(video), batch_size=4), "videos"))
    assert not batch["labels"].any()


def test_release_is_decided_from_all_records(tmp_path):
    r2018, r2017 = specs.release(2018), specs.release(2017)
    # A 2019 validate shard whose first records have no segment ratings.
    path = tmp_path / "validate0000.tfrecord"
    recs = [frame_record(f"v{i}", r2018) for i in range(3)]
    recs.append(frame_record("rated", r2018, segments=RATINGS))
    records.write_tfrecord(str(path), recs)
    report = inspect(path)
    assert report["version"] == 2019 and report["valid"], report["problems"]
    # The ratings may be in a later file of the glob too.
    records.write_tfrecord(str(tmp_path / "validate0001.tfrecord"), recs[:1])
    records.write_tfrecord(str(tmp_path / "validate0000.tfrecord"), recs[1:])
    assert inspect(tmp_path / "validate*.tfrecord")["version"] == 2019
    # Without ratings it is 2018; with `video_id` 2017.
    records.write_tfrecord(str(path), recs[:3])
    assert inspect(path)["version"] == 2018
    path = tmp_path / "train.tfrecord"
    records.write_tfrecord(str(path), [video_record(f"v{i}", r2017) for i in range(3)])
    assert inspect(path)["version"] == 2017


def test_a_misleading_first_record_is_checked_as_the_majority(tmp_path):
    # One stray 2017 record first, then 2018 ones: 2018, with one problem on record 0.
    path = tmp_path / "train.tfrecord"
    recs = [video_record("old", specs.release(2017))]
    recs += [video_record(f"v{i}", specs.release(2018)) for i in range(4)]
    records.write_tfrecord(str(path), recs)
    report = inspect(path)
    assert report["version"] == 2018
    assert report["problem_counts"] == {"missing id": 1}
    assert report["problems"][0].startswith(f"{path}:0: missing bytes context key 'id'")
    # A fixed --version checks every record as that release.
    report = inspect_records(str(path), version=2017, progress=False)
    assert report["version"] == 2017 and report["problem_counts"] == {"missing id": 4}


def test_empty_file_is_a_problem(tmp_path):
    release = specs.release(2018)
    records.write_tfrecord(str(tmp_path / "a.tfrecord"), [frame_record("a", release)])
    records.write_tfrecord(str(tmp_path / "b.tfrecord"), [])
    report = inspect(tmp_path / "*.tfrecord")
    assert not report["valid"] and report["num_problems"] == 1
    assert report["problem_counts"] == {"empty file": 1}
    assert report["problems"] == [f"{tmp_path / 'b.tfrecord'}: no records (empty file)"]
    assert report["files"][str(tmp_path / "b.tfrecord")] == 0 and report["frame_level"]
    report = inspect(tmp_path / "b.tfrecord")
    assert not report["valid"] and report["videos"] == 0


def test_zero_frames_and_frame_count_mismatch_are_problems(tmp_path):
    release = specs.release(2018)
    path = tmp_path / "train.tfrecord"
    recs = [
        frame_record("ok", release),
        frame_record("empty1", release, frames=0),
        frame_record("short_audio", release, frames=6, audio_frames=4),
        frame_record("empty2", release, frames=0),
        frame_record("long_audio", release, frames=2, audio_frames=3),
    ]
    records.write_tfrecord(str(path), recs)
    report = inspect(path)
    assert not report["valid"]
    assert report["problem_counts"] == {"no frames": 2, "frame count mismatch": 2}
    assert report["num_problems"] == 4
    assert f"{path}:1: 0 frames" in report["problems"]
    assert f"{path}:2: frame counts differ: rgb 6, audio 4" in report["problems"]
    assert report["num_frames"]["min"] == 0


@pytest.mark.parametrize("frame_level", [True, False])
def test_valid_shard_reports_no_problem(tmp_path, frame_level):
    release = specs.release(2018)
    make = frame_record if frame_level else video_record
    path = tmp_path / "train.tfrecord"
    records.write_tfrecord(str(path), [make(f"v{i}", release) for i in range(3)])
    report = inspect(path)
    assert report["valid"] and report["problem_counts"] == {} and report["videos"] == 3


def test_ids_a_kaggle_csv_cannot_hold_are_problems(tmp_path):
    release = specs.release(2018)
    ids = ["ok", "a,b", 'q"uote', "new\nline", ""]
    path = tmp_path / "ids.tfrecord"
    records.write_tfrecord(str(path), [video_record(vid, release) for vid in ids])
    report = inspect(path)
    assert report["problem_counts"] == {"id unfit for a CSV": 4}
    assert any("'a,b'" in p for p in report["problems"])
