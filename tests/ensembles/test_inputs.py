import numpy as np
import pytest

from ensembles.inputs import index_files, load_input, model_name
from y8m.errors import UsageError
from y8m.predictions import PredictionWriter


def test_kaggle_csv_as_predictions(tmp_path):
    path = tmp_path / "test-netvlad.csv"
    path.write_text("VideoId,LabelConfidencePairs\nAb,3 0.9 1 0.5\nCd,2 0.25\n")
    with pytest.warns(UserWarning, match="ensembles are better"):
        loaded = load_input(str(path), num_classes=10)
    assert loaded.model_name == "test-netvlad" and loaded.labels is None
    assert loaded.num_classes == 10
    np.testing.assert_array_equal(loaded.ids, ["Ab", "Cd"])
    np.testing.assert_array_equal(loaded.classes, [[3, 1], [2, -1]])
    np.testing.assert_allclose(loaded.scores, [[0.9, 0.5], [0.25, 0.0]])


def test_stores_and_names(tmp_path):
    with PredictionWriter(
        tmp_path / "a", model_name="netvlad", split="t", num_classes=3, top_k=2
    ) as w:
        w.add_batch(["x"], np.array([[0.1, 0.7, 0.2]]))
    store = str(tmp_path / "a.parquet")
    assert load_input(store).model_name == "netvlad" and model_name(store) == "netvlad"
    assert model_name(str(tmp_path / "B.CSV.GZ")) == "B"
    with pytest.raises(UsageError, match="no such prediction file"):
        load_input(str(tmp_path / "missing.csv"))
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(UsageError, match="neither a y8m prediction store nor a Kaggle CSV"):
        index_files(str(tmp_path / "*.parquet"), "test")
