"""The batched reader against the plain per-record pipeline: same records, same sampling,
same values (the plain pipeline is the bench's baseline, `y8m bench reader`)."""

import numpy as np
import pytest
import tensorflow as tf

from tests.y8m.data.test_readers import _write_frame_file
from y8m.cli.bench.reader import baseline_dataset
from y8m.data import read_frames, specs
from y8m.data.readers import iterate, read_records

# Lengths chosen so batches mix short, long and truncated (> max_frames) videos.
_LENGTHS = ([7, 3, 12, 30, 1], [5, 9, 16, 2])


@pytest.fixture()
def frame_files(tmp_path):
    release = specs.release(2018)
    for i, lengths in enumerate(_LENGTHS):
        _write_frame_file(tmp_path / f"train{i}.tfrecord", release, lengths, seed=i)
    return str(tmp_path / "train*.tfrecord")


def _pairs(ours, plain):
    got, want = list(iterate(ours, "ours")), list(iterate(plain, "plain"))
    assert len(got) == len(want) > 1
    return zip(got, want)


def test_uniform_sampling_equals_the_plain_pipeline(frame_files):
    ours = read_frames(frame_files, batch_size=3, sample="uniform", num_samples=8, max_frames=10)
    plain = baseline_dataset(frame_files, 2018, 3, 8, sample="uniform", max_frames=10)
    for a, b in _pairs(ours, plain):
        np.testing.assert_array_equal(a["id"], b["id"])  # same records in the same order
        for f in specs.FRAME_FEATURES:
            assert a[f.name].shape == b[f.name].shape
            np.testing.assert_allclose(a[f.name], b[f.name], rtol=0, atol=1e-5)
        np.testing.assert_array_equal(a["labels"], b["labels"])
        np.testing.assert_array_equal(a["num_frames"], b["num_frames"])


def test_ordered_frames_equal_the_plain_pipeline(frame_files):
    ours = read_frames(frame_files, batch_size=4, sample="ordered", max_frames=10)
    plain = baseline_dataset(frame_files, 2018, 4, 8, sample="ordered", max_frames=10)
    for a, b in _pairs(ours, plain):
        np.testing.assert_array_equal(a["id"], b["id"])
        np.testing.assert_array_equal(a["num_frames"], b["num_frames"])
        width = a["rgb"].shape[1]  # the reader pads to the batch's longest video only
        assert width == a["num_frames"].max()
        for f in specs.FRAME_FEATURES:
            np.testing.assert_allclose(a[f.name], b[f.name][:, :width], rtol=0, atol=1e-5)
            assert not b[f.name][:, width:].any()


def test_random_sampling_is_reproducible_with_a_seed(frame_files):
    # Small batches, so several parse in parallel: a stateful generator would hand them its
    # draws in whatever order the calls ran (most reads of this test differed then).
    def batches(seed, epochs=1):
        ds = read_frames(
            frame_files, batch_size=2, sample="random", num_samples=16, seed=seed, repeat=True
        )
        return [b["rgb"] for b in iterate(ds.take(5 * epochs), "ours")]

    first = batches(5, epochs=2)
    for _ in range(4):
        again = batches(5, epochs=2)
        for a, b in zip(first, again, strict=True):
            np.testing.assert_array_equal(a, b)
    # Another seed, and the next pass over the same videos, draw other frames.
    assert any(not np.array_equal(a, c) for a, c in zip(first, batches(6, epochs=2)))
    assert any(not np.array_equal(a, c) for a, c in zip(first[:5], first[5:]))


def test_read_records_are_the_files_records_in_the_readers_order(frame_files, tmp_path):
    # Interleaved one record at a time across the files, whatever the reading threads.
    files = sorted(tmp_path.glob("train*.tfrecord"))
    per_file = [[r.numpy() for r in tf.data.TFRecordDataset(str(f))] for f in files]
    expected = [
        recs[i] for i in range(max(map(len, per_file))) for recs in per_file if i < len(recs)
    ]
    got = [r for batch in read_records(frame_files, batch_size=4) for r in batch.numpy()]
    assert got == expected
