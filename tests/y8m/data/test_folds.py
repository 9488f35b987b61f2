"""`y8m split`: stratified folds of the rated 2019 videos, copied byte for byte."""

import glob
import json

import pytest
import tensorflow as tf

from y8m.data import read_segment_ratings
from y8m.data.folds import assign_folds, split_folds
from y8m.errors import UsageError

FOLDS = 4


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from y8m.data.synth import synthesize

    root = tmp_path_factory.mktemp("s19")
    synthesize(
        str(root), version=2019, videos=40, validate_videos=40, num_classes=32,
        active_classes=6, level="frame", progress=False,
    )  # fmt: skip
    return root


@pytest.fixture(scope="module")
def split(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("folds")
    summary = split_folds(
        str(data / "frame" / "validate*.tfrecord"), folds=FOLDS, output_dir=str(out),
        progress=False,
    )  # fmt: skip
    return out, summary


def _records(pattern) -> dict[str, bytes]:
    """Video id -> serialized record, for every file matching `pattern`."""
    out = {}
    for path in sorted(glob.glob(str(pattern))):
        for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
            vid = tf.train.SequenceExample.FromString(raw).context.feature["id"]
            key = vid.bytes_list.value[0].decode()
            assert key not in out, f"{key} twice in {pattern}"
            out[key] = raw
    return out


def test_folds_partition_the_rated_videos_with_byte_identical_copies(data, split):
    out, summary = split
    source = _records(data / "frame" / "validate*.tfrecord")
    rated = set(read_segment_ratings(str(data / "frame" / "validate*.tfrecord"))["id"])
    assert rated and set(summary["fold_of"]) == rated
    seen = set()
    for k in range(FOLDS):
        validate = _records(out / f"fold{k}" / "validate*.tfrecord")
        train = _records(out / f"fold{k}" / "train*.tfrecord")
        assert not set(validate) & set(train)
        assert set(validate) | set(train) == rated
        assert {v for v, f in summary["fold_of"].items() if f == k} == set(validate)
        assert len(validate) == summary["videos"][k]
        assert not seen & set(validate)
        seen |= set(validate)
        for vid, raw in {**validate, **train}.items():
            assert raw == source[vid]
    assert seen == rated
    on_disk = json.loads((out / "folds.json").read_text())
    assert on_disk["fold_of"] == summary["fold_of"] and on_disk["seed"] == 0


def test_each_class_is_spread_evenly(split):
    _, summary = split
    # Fold sizes follow the classes (a video rated for 3 classes counts in each), so they can
    # differ by a few videos; every fold gets its share.
    assert sum(summary["videos"]) == 40 and min(summary["videos"]) >= 40 // FOLDS - 2
    # Videos rated for several classes can in principle push a class one past the bound of 1
    # (see y8m.data.folds); on this set every class stays within it.
    assert summary["class_counts"]
    for counts in summary["class_counts"].values():
        assert max(counts) - min(counts) <= 1, summary["class_counts"]
    assert sum(summary["segments"]) > 0


def test_assignment_is_deterministic_for_a_seed():
    classes_of = {f"v{i:02d}": sorted({i % 5, (i * 7) % 3 + 5}) for i in range(30)}
    a, b = assign_folds(classes_of, 3, seed=1), assign_folds(classes_of, 3, seed=1)
    assert a == b and set(a) == set(classes_of)
    others = [assign_folds(classes_of, 3, seed=s) for s in range(2, 8)]
    assert any(o != a for o in others)


def test_single_label_classes_differ_by_at_most_one():
    classes_of = {f"v{i:03d}": [i % 7] for i in range(103)}
    fold_of = assign_folds(classes_of, 5, seed=3)
    for c in range(7):
        counts = [0] * 5
        for vid, cs in classes_of.items():
            if c in cs:
                counts[fold_of[vid]] += 1
        assert max(counts) - min(counts) <= 1


def test_rerun_replaces_shards(data, tmp_path):
    pattern = str(data / "frame" / "validate*.tfrecord")
    first = split_folds(pattern, folds=2, output_dir=str(tmp_path), seed=5, progress=False)
    stale = tmp_path / "fold1" / "train0099.tfrecord"
    stale.write_bytes(b"")
    again = split_folds(pattern, folds=2, output_dir=str(tmp_path), seed=5, progress=False)
    assert first["fold_of"] == again["fold_of"] and not stale.exists()


def test_bad_input(data, tmp_path):
    with pytest.raises(UsageError, match=r"no segment ratings in .*train\*\.tfrecord"):
        split_folds(str(data / "frame" / "train*.tfrecord"), output_dir=str(tmp_path))
    pattern = str(data / "frame" / "validate*.tfrecord")
    with pytest.raises(UsageError, match="--folds must be at least 2"):
        split_folds(pattern, folds=1, output_dir=str(tmp_path))
    with pytest.raises(UsageError, match="--folds must be at most 40"):
        split_folds(pattern, folds=41, output_dir=str(tmp_path))
    assert not list(tmp_path.iterdir())


def test_cli_split_prints_a_table(data, tmp_path, capsys):
    from y8m.cli.commands import split as split_command

    split_command(str(data / "frame" / "validate*.tfrecord"), folds=2, output_dir=str(tmp_path))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["fold", "videos", "rated", "segments"]
    assert [line.split()[0] for line in lines[1:3]] == ["0", "1"]


@pytest.mark.slow
def test_train_and_eval_on_a_fold(split, tmp_path):
    from y8m.run.evaluate import evaluate
    from y8m.run.train import train

    out, _ = split
    run = tmp_path / "run"
    train(
        model="netvlad", segment_labels=True,
        train_data_pattern=str(out / "fold0" / "train*.tfrecord"), train_dir=str(run),
        batch_size=8, max_steps=2, num_classes=32, cluster_size=4, hidden_size=8,
        sample_frames=8, progress=False,
    )  # fmt: skip
    result = evaluate(
        train_dir=str(run), eval_data_pattern=str(out / "fold0" / "validate*.tfrecord"),
        segments=True, progress=False,
    )  # fmt: skip
    assert 0.0 <= result["map"] <= 1.0
