"""y8m synth writes the official layout with planted structure; y8m inspect validates it."""

import csv
import os

import numpy as np
import pytest

from y8m.data import read_frames, read_labels, specs
from y8m.data.inspect import inspect_records
from y8m.data.readers import iterate
from y8m.data.synth import synthesize


@pytest.mark.parametrize("version", [2017, 2018, 2019])
def test_synth_layout_and_inspect(tmp_path, version):
    out = tmp_path / str(version)
    summary = synthesize(
        str(out),
        version=version,
        videos=16,
        shards=2,
        min_frames=5,
        max_frames=15,
        active_classes=6,
        progress=False,
    )
    names = sorted(os.listdir(out / "frame"))
    prefix = "traina0" if version == 2017 else "train0000"
    assert names[-1].startswith("validate") and any(n.startswith(prefix) for n in names)
    with open(out / specs.VOCABULARY_FILE) as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == specs.VOCABULARY_COLUMNS
    assert len(rows) - 1 == specs.release(version).num_classes
    for level in ("frame", "video"):
        report = inspect_records(str(out / level / "*.tfrecord"), version=version, progress=False)
        assert report["valid"], report["problems"]
        assert report["videos"] == sum(summary["videos"].values())
        assert report["frame_level"] == (level == "frame")
    if version == 2019:
        with open(out / specs.SEGMENT_LABEL_IDS_FILE) as f:
            ids = [line.strip() for line in f]
        assert ids[0] == "Index" and len(ids) == 1001


def test_synth_is_deterministic(tmp_path):
    for name in ("a", "b"):
        synthesize(
            str(tmp_path / name), videos=8, shards=1, min_frames=5, max_frames=8, progress=False
        )
    for sub in ("frame/train0000.tfrecord", "video/test0000.tfrecord", "vocabulary.csv"):
        assert (tmp_path / "a" / sub).read_bytes() == (tmp_path / "b" / sub).read_bytes()


def test_planted_structure(synth_dir):
    labels = read_labels(str(synth_dir / "frame" / "train*.tfrecord"))
    counts = np.bincount(np.concatenate(labels["labels"].to_numpy()), minlength=64)
    active = np.sort(counts[counts > 0])[::-1]
    assert len(active) <= 12 and active[0] >= 3 * active[-1]  # long tail
    assert labels["labels"].map(len).mean() > 1.2  # co-occurring labels
    # Evidence frames sit far from the distractor noise; the frame average hides their sign.
    pattern = str(synth_dir / "frame" / "train*.tfrecord")
    (batch, *_) = list(iterate(read_frames(pattern, batch_size=96, max_frames=30), pattern))
    norms = np.linalg.norm(batch["rgb"], axis=-1)
    real = norms[np.arange(30)[None, :] < batch["num_frames"][:, None]]
    assert np.percentile(real, 95) > 1.3 * np.median(real)


def test_test_split_has_no_labels_but_a_solution(synth_dir):
    labels = read_labels(str(synth_dir / "frame" / "test*.tfrecord"))
    assert labels["labels"].map(len).sum() == 0
    assert (synth_dir / "test_solution.csv").exists()


def test_inspect_reports_problems(tmp_path, synth_dir):
    report = inspect_records(
        str(synth_dir / "video" / "train*.tfrecord"), version=2017, progress=False
    )
    assert not report["valid"] and "video_id" in report["problems"][0]
    report = inspect_records(str(synth_dir / "frame" / "train*.tfrecord"), progress=False)
    assert report["valid"]
