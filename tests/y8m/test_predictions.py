"""The Parquet prediction store: streaming writes, round trips, pandas, Kaggle CSV input."""

import os

import numpy as np
import pandas as pd
import pytest

from y8m.errors import UsageError
from y8m.predictions import Predictions, PredictionWriter, load_predictions


def dense_batch(rng, n, c, label_rate=0.1):
    probabilities = rng.random((n, c)).astype(np.float32)
    labels = (rng.random((n, c)) < label_rate).astype(np.float32)
    return probabilities, labels


def test_dense_round_trip_with_labels(tmp_path):
    rng = np.random.default_rng(0)
    c, k = 12, 5
    batches = [dense_batch(rng, n, c) for n in (7, 3, 9)]
    with PredictionWriter(
        tmp_path / "model_a_validate",
        model_name="model_a",
        split="validate",
        num_classes=c,
        top_k=k,
        data_pattern="data/validate*.tfrecord",
        extra_metadata={"train_dir": "runs/a"},
        row_group_size=8,  # several row groups
    ) as writer:
        start = 0
        for probabilities, labels in batches:
            ids = [f"v{start + i}" for i in range(len(probabilities))]
            writer.add_batch(ids, probabilities, labels)
            start += len(ids)
    path = tmp_path / "model_a_validate.parquet"
    assert path.exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]

    loaded = load_predictions(str(path))
    probabilities = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    expected_classes = np.argsort(-probabilities, axis=1)[:, :k]
    np.testing.assert_array_equal(loaded.ids, [f"v{i}" for i in range(19)])
    np.testing.assert_array_equal(loaded.classes, expected_classes)
    np.testing.assert_array_equal(
        loaded.scores, np.take_along_axis(probabilities, expected_classes, axis=1)
    )
    assert loaded.classes.dtype == np.int32 and loaded.scores.dtype == np.float32
    for row, got in zip(labels, loaded.labels):
        np.testing.assert_array_equal(got, np.flatnonzero(row))
    np.testing.assert_array_equal(
        loaded.hits(), np.take_along_axis(labels, expected_classes, axis=1) > 0
    )
    assert loaded.num_positives() == int(labels.sum())
    meta = loaded.metadata
    assert (meta["model_name"], meta["split"], meta["num_classes"], meta["top_k"]) == (
        "model_a",
        "validate",
        c,
        k,
    )
    assert meta["data_pattern"] == "data/validate*.tfrecord" and meta["train_dir"] == "runs/a"
    assert meta["created"] and meta["has_labels"] is True

    frame = pd.read_parquet(path)
    assert list(frame.columns) == ["id", "classes", "scores", "labels"]
    np.testing.assert_array_equal(np.stack(frame["classes"].to_numpy()), expected_classes)


def test_topk_input_without_labels_sorted_and_padded(tmp_path):
    path = tmp_path / "b.parquet"
    with PredictionWriter(path, model_name="b", split="test", num_classes=10, top_k=4) as writer:
        writer.add_topk(
            ["x", "y"],
            classes=np.array([[3, 1, 7], [2, 5, -1]]),
            scores=np.array([[0.1, 0.9, 0.5], [0.3, 0.8, 0.0]]),
        )
        writer.add_topk([b"z"], np.array([[0, 1, 2, 3, 4, 5]]), np.linspace(0, 1, 6)[None])
    loaded = load_predictions(str(path))
    assert loaded.labels is None and loaded.metadata["has_labels"] is False
    np.testing.assert_array_equal(loaded.ids, ["x", "y", "z"])
    np.testing.assert_array_equal(loaded.classes, [[1, 7, 3, -1], [5, 2, -1, -1], [5, 4, 3, 2]])
    np.testing.assert_allclose(loaded.scores[0], [0.9, 0.5, 0.1, 0.0])
    with pytest.raises(UsageError, match="no labels"):
        loaded.hits()


def test_topk_input_with_label_lists(tmp_path):
    path = tmp_path / "c.parquet"
    with PredictionWriter(path, model_name="c", split="validate", num_classes=5, top_k=2) as w:
        w.add_topk(
            ["a", "b"],
            np.array([[0, 1], [2, 3]]),
            np.array([[0.5, 0.4], [0.2, 0.9]]),
            labels=[np.array([1, 4]), np.array([], int)],
        )
    loaded = load_predictions(str(path))
    np.testing.assert_array_equal(loaded.hits(), [[False, True], [False, False]])
    assert loaded.num_positives() == 2


def test_failure_leaves_no_file(tmp_path):
    path = tmp_path / "d.parquet"
    with pytest.raises(RuntimeError, match="boom"):
        with PredictionWriter(path, model_name="d", split="test", num_classes=3, top_k=2) as w:
            w.add_batch(["a"], np.ones((1, 3)))
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_empty_store_and_mixed_labels_error(tmp_path):
    path = tmp_path / "e.parquet"
    with PredictionWriter(path, model_name="e", split="test", num_classes=3, top_k=2):
        pass
    loaded = load_predictions(str(path))
    assert loaded.num_videos == 0 and loaded.classes.shape == (0, 2)
    with pytest.raises(ValueError, match="every batch"):
        with PredictionWriter(path, model_name="e", split="t", num_classes=3, top_k=2) as w:
            w.add_batch(["a"], np.ones((1, 3)), np.zeros((1, 3)))
            w.add_batch(["b"], np.ones((1, 3)))


def test_bad_inputs(tmp_path):
    with pytest.raises(UsageError, match="no such"):
        load_predictions(str(tmp_path / "missing.parquet"))
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(UsageError, match="not a Parquet"):
        load_predictions(str(tmp_path / "junk.parquet"))
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "other.parquet")
    with pytest.raises(UsageError, match="not a y8m prediction store"):
        load_predictions(str(tmp_path / "other.parquet"))
    with PredictionWriter(tmp_path / "f", model_name="f", split="t", num_classes=3, top_k=2) as w:
        with pytest.raises(ValueError, match=r"\[B, 3\]"):
            w.add_batch(["a"], np.ones((1, 4)))


def test_kaggle_csv_is_not_a_store(tmp_path):
    """The store loader reads stores only; `ensembles.inputs.load_input` reads CSVs too."""
    path = tmp_path / "test-netvlad.csv"
    path.write_text("VideoId,LabelConfidencePairs\nAb,3 0.9 1 0.5\nCd,2 0.25\n")
    with pytest.raises(UsageError, match=r"Kaggle CSV, not a prediction store.*load_input"):
        load_predictions(str(path), num_classes=10)


def test_take_and_dataclass_checks():
    p = Predictions(["a", "b"], [[0], [1]], [[0.5], [0.25]], [[0], []], {"model_name": "m"})
    q = p.take(np.array([1, 0]))
    np.testing.assert_array_equal(q.ids, ["b", "a"])
    np.testing.assert_array_equal(q.hits(), [[False], [True]])
    with pytest.raises(ValueError):
        Predictions(["a"], [[0], [1]], [[0.5], [0.25]])


@pytest.mark.parametrize("failing", ["close", "write_table"])
def test_full_disk_on_final_flush_or_close_keeps_the_old_store(tmp_path, monkeypatch, failing):
    """ENOSPC while the last row group or the footer is written: the old store stays as it was."""
    import errno

    import pyarrow.parquet as pq

    def write(rows, **kwargs):
        with PredictionWriter(
            tmp_path / "m_test", model_name="m", split="test", num_classes=4, top_k=2, **kwargs
        ) as writer:
            writer.add_topk([f"v{i}" for i in range(rows)], [[0, 1]] * rows, [[0.9, 0.1]] * rows)

    write(3)
    path = tmp_path / "m_test.parquet"
    good = path.read_bytes()

    def full_disk(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pq.ParquetWriter, failing, full_disk)
    with pytest.raises(UsageError, match=r"^cannot write .*m_test\.parquet: No space left"):
        write(5)
    assert path.read_bytes() == good
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]
    monkeypatch.undo()
    assert load_predictions(path).num_videos == 3
