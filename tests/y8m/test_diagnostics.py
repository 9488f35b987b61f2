import numpy as np
import pandas as pd
import pytest

from tests.y8m.run.report.planted import planted
from y8m import diagnostics, metrics
from y8m.errors import UsageError
from y8m.predictions import Predictions


def store(scores, labels, top_k=None, name="m"):
    """A store holding each row's top_k (all classes by default) of dense scores."""
    k = top_k or scores.shape[1]
    index, top = metrics.top_k_per_row(scores, k, sort=True)
    meta = {"model_name": name, "num_classes": scores.shape[1], "top_k": k}
    label_lists = [np.flatnonzero(row) for row in labels]
    return Predictions([f"v{i}" for i in range(len(scores))], index, top, label_lists, meta)


def dense_class_ap(scores, labels, top_k=20):
    index, top = metrics.top_k_per_row(scores, top_k, labels=labels)
    hits = np.take_along_axis(labels, index, axis=1) > 0
    return metrics.average_precision_by_class(index, top, hits, labels.sum(axis=0))


@pytest.mark.parametrize("ties", [False, True])
def test_summary_equals_the_dense_metrics(ties):
    scores, labels = planted(400, 30, seed=3, skill=1.5, ties=ties)
    got = diagnostics.summary(diagnostics.rank_store(store(scores, labels)))
    assert got["gap"] == pytest.approx(metrics.gap(scores, labels), abs=1e-12)
    assert got["hit_at_one"] == pytest.approx(metrics.hit_at_one(scores, labels), abs=1e-12)
    assert got["perr"] == pytest.approx(metrics.perr(scores, labels), abs=1e-12)
    assert got["map"] == pytest.approx(metrics.mean_average_precision(scores, labels), abs=1e-12)
    assert got["videos"] == 400 and got["positives"] == int(labels.sum())


@pytest.mark.parametrize("ties", [False, True])
def test_class_table_ap_matches_average_precision_by_class(ties):
    scores, labels = planted(300, 40, seed=5, skill=1.0, ties=ties)
    # A store that keeps 25 classes per video: the AP uses each video's top 20 of them.
    ranked = diagnostics.rank_store(store(scores, labels, top_k=25))
    table = diagnostics.class_table({"m": ranked})
    expected = dense_class_ap(scores, labels)
    assert list(table["class"]) == list(np.flatnonzero(labels.sum(axis=0) > 0))
    np.testing.assert_allclose(table["ap:m"], expected[table["class"]], atol=1e-12)
    assert list(table["positives"]) == list(labels.sum(axis=0)[table["class"]].astype(int))


def test_class_table_names_verticals_and_counts():
    scores, labels = planted(100, 6, seed=0)
    vocabulary = {c: {"name": f"n{c}", "vertical": "V" if c % 2 else "", "train_videos": 10 * c}
                  for c in range(6)}  # fmt: skip
    table = diagnostics.class_table(
        {"m": diagnostics.rank_store(store(scores, labels))}, vocabulary
    )
    assert list(table["name"]) == [f"n{c}" for c in table["class"]]
    assert set(table["vertical"]) == {"V", diagnostics.NO_VERTICAL}
    assert list(table["train_videos"]) == [10 * c for c in table["class"]]


def test_vertical_table_is_the_mean_class_ap_of_its_classes():
    classes = pd.DataFrame({"class": [0, 1, 2], "vertical": ["A", "A", "B"],
                            "train_videos": [5, 6, 7], "positives": [3, 1, 2],
                            "ap:m": [0.2, 0.6, 0.9]})  # fmt: skip
    table = diagnostics.vertical_table(classes).set_index("vertical")
    assert table.loc["A", "mean_ap:m"] == pytest.approx(0.4)
    assert table.loc["B", "mean_ap:m"] == pytest.approx(0.9)
    assert table.loc["A", "classes"] == 2 and table.loc["A", "positives"] == 4


def test_long_tail_buckets_are_equal_count_and_rarest_first():
    classes = pd.DataFrame({"class": range(10), "vertical": "x",
                            "train_videos": [100, 1, 50, 2, 40, 3, 30, 4, 20, 5],
                            "positives": 1, "ap:m": np.linspace(0, 0.9, 10)})  # fmt: skip
    tail = diagnostics.long_tail_table(classes, buckets=5)
    assert list(tail["classes"]) == [2] * 5
    assert list(tail["frequency"]) == ["1-2", "3-4", "5-20", "30-40", "50-100"]
    # Bucket 1 holds the classes with 1 and 2 training videos: APs 0.1 and 0.3.
    assert tail.loc[0, "mean_ap:m"] == pytest.approx(0.2)
    assert set(tail["count_source"]) == {"train_videos"}
    unknown = diagnostics.long_tail_table(classes.assign(train_videos=np.nan), buckets=2)
    assert set(unknown["count_source"]) == {"positives"}


def test_confused_pairs_count_false_positives_above_true_labels():
    # Class 2 outranks the true class 1 in three videos; class 3 outranks it once.
    classes = np.array([[2, 1, 0], [2, 1, 0], [2, 3, 1], [1, 2, 3]])
    scores = np.array([[0.9, 0.5, 0.1]] * 4)
    labels = [np.array([1]), np.array([1, 2]), np.array([1]), np.array([1])]
    p = Predictions(["a", "b", "c", "d"], classes, scores, labels, {"num_classes": 4})
    pairs = diagnostics.confused_pairs(diagnostics.rank_store(p, top_k=3))
    first = pairs.iloc[0]
    assert (first.true_class, first.predicted_class, first.videos) == (1, 2, 2)
    assert first.rate == pytest.approx(2 / 4)
    assert first.both_labels == 1
    rows = {(r.true_class, r.predicted_class): r.videos for r in pairs.itertuples()}
    assert rows == {(1, 2): 2, (1, 3): 1}  # b's class 2 is a label; d ranks its label first


def test_a_label_missing_from_the_list_is_outranked_by_every_false_positive():
    p = Predictions(["a"], [[3, 4]], [[0.8, 0.7]], [np.array([1])], {"num_classes": 5})
    pairs = diagnostics.confused_pairs(diagnostics.rank_store(p, top_k=2))
    assert sorted(zip(pairs.true_class, pairs.predicted_class)) == [(1, 3), (1, 4)]


def test_calibration_bins_and_error():
    p = Predictions(
        ["a", "b"],
        [[0, 1], [0, 1]],
        [[0.95, 0.15], [0.85, 0.05]],
        [np.array([0]), np.array([1])],
        {"num_classes": 2},
    )
    table, ece = diagnostics.calibration_table(diagnostics.rank_store(p, top_k=2), bins=10)
    assert list(table["entries"]) == [1, 1, 0, 0, 0, 0, 0, 0, 1, 1]
    assert list(table["hit_rate"][[0, 1, 8, 9]]) == [1.0, 0.0, 0.0, 1.0]
    assert np.isnan(table.loc[5, "hit_rate"])
    expected = (0.95 + 0.15 + 0.85 + 0.05) / 4
    assert ece == pytest.approx(expected)


def test_a_store_without_labels_is_a_usage_error():
    p = Predictions(["a"], [[0]], [[0.5]], None, {"model_name": "x", "num_classes": 2})
    with pytest.raises(UsageError, match="no labels"):
        diagnostics.rank_store(p)
