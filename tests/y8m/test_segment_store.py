"""The 2019 segment prediction store: round trip, paths and clear errors for other files."""

import numpy as np
import pandas as pd
import pytest

from y8m.errors import UsageError
from y8m.segment_store import (
    SegmentSet,
    load_segment_store,
    segment_store_path,
    write_segment_store,
)

METADATA = {
    "model_name": "m",
    "num_classes": 8,
    "rated_classes": [3, 7],
    "segment_max_pred": 2,
    "data_pattern": "data/test*.tfrecord",
}


def test_round_trip(tmp_path):
    path = str(tmp_path / "m.segments.parquet")
    write_segment_store(path, {3: (["a:0", "b:5"], [0.9, 0.4]), 7: (["c:10"], [0.2])}, METADATA)
    frame, metadata = load_segment_store(path)
    assert frame["segment_id"].tolist() == ["a:0", "b:5", "c:10"]
    assert frame["class"].dtype == np.int32 and frame["class"].tolist() == [3, 3, 7]
    assert frame["score"].dtype == np.float32
    np.testing.assert_allclose(frame["score"], [0.9, 0.4, 0.2], rtol=1e-6)
    assert metadata == METADATA


def test_round_trip_from_frame(tmp_path):
    path = str(tmp_path / "m.segments.parquet")
    frame = pd.DataFrame({"segment_id": ["a:0"], "class": [3], "score": [0.5]})
    write_segment_store(path, frame, METADATA)
    assert load_segment_store(path)[0]["segment_id"].tolist() == ["a:0"]


def test_paths():
    assert segment_store_path("out/seg.csv") == "out/seg.segments.parquet"
    assert segment_store_path("out/seg.csv.gz") == "out/seg.segments.parquet"


def test_segment_set_is_order_free():
    a = SegmentSet().update(["a:0", "b:5"]).update(["c:0"])
    b = SegmentSet().update(["c:0", "b:5", "a:0"])
    assert a.hexdigest() == b.hexdigest() and a.count == 3
    assert SegmentSet().update(["a:0"]).hexdigest() != b.hexdigest()


def test_not_a_store(tmp_path):
    with pytest.raises(UsageError, match="no such segment store"):
        load_segment_store(str(tmp_path / "missing.parquet"))
    text = tmp_path / "x.parquet"
    text.write_text("Class,Segments\n")
    with pytest.raises(UsageError, match="not a segment store"):
        load_segment_store(str(text))
    plain = tmp_path / "plain.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(plain)
    with pytest.raises(UsageError, match="Parquet file but not a segment store"):
        load_segment_store(str(plain))


def test_metadata_is_checked(tmp_path):
    with pytest.raises(UsageError, match="lacks"):
        write_segment_store(str(tmp_path / "m.parquet"), {}, {"model_name": "m"})
    with pytest.raises(UsageError, match="segment ids but"):
        write_segment_store(str(tmp_path / "m.parquet"), {3: (["a:0"], [0.1, 0.2])}, METADATA)


@pytest.mark.slow
def test_predict_segments_writes_the_store(tmp_path):
    from submissions.formats import read_segment_submission
    from y8m.data.synth import synthesize
    from y8m.run.predict import predict
    from y8m.run.train import train

    data = tmp_path / "data"
    synthesize(
        str(data),
        version=2019,
        level="frame",
        videos=40,
        num_classes=32,
        active_classes=6,
        shards=1,
        progress=False,
    )
    run = tmp_path / "avg"
    train(
        model="average_logistic",
        train_data_pattern=str(data / "frame" / "train*.tfrecord"),
        train_dir=str(run),
        max_steps=2,
        batch_size=8,
        num_classes=32,
        progress=False,
    )
    pattern = str(data / "frame" / "test*.tfrecord")
    out = predict(
        train_dir=str(run),
        input_data_pattern=pattern,
        output_file=str(tmp_path / "seg"),
        segments=True,
        segment_max_pred=7,
        progress=False,
    )
    assert out["segment_store"] == str(tmp_path / "seg.segments.parquet")
    frame, metadata = load_segment_store(out["segment_store"])
    per_class = read_segment_submission(out["output_file"])
    stored = {int(c): g["segment_id"].tolist() for c, g in frame.groupby("class", sort=False)}
    assert stored == per_class
    assert all((np.diff(g["score"].to_numpy()) <= 0).all() for _, g in frame.groupby("class"))
    assert metadata["model_name"] == "avg" and metadata["num_classes"] == 32
    assert metadata["segment_max_pred"] == 7 and metadata["data_pattern"] == pattern
    assert set(per_class) <= set(metadata["rated_classes"]) and metadata["num_segments"] > 0
    assert (tmp_path / "seg.segments.manifest.json").exists()
