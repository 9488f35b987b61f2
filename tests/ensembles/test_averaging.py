"""Sparse averages equal dense numpy computations; alignment by id; weight checks."""

import numpy as np
import pytest

from ensembles import average, rank_average, rank_transform, weighted_average
from tests.ensembles._helpers import densify, random_models
from y8m.errors import UsageError
from y8m.predictions import Predictions


def dense_reference(models, weights, num_classes, k, transform=None):
    total = sum(weights.values())
    combined = np.zeros((models[next(iter(weights))].num_videos, num_classes))
    listed = np.zeros(combined.shape, bool)
    for name, weight in weights.items():
        p = models[name] if transform is None else transform(models[name])
        scores, ok = densify(p, num_classes)
        combined += weight / total * scores
        listed |= ok
    combined = np.where(listed, combined, -np.inf)
    order = np.argsort(-combined, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(combined, order, axis=1)


def assert_matches(out, classes, scores):
    finite = np.isfinite(scores)
    np.testing.assert_array_equal(out.classes[finite], classes[finite])
    np.testing.assert_allclose(out.scores[finite], scores[finite], rtol=1e-5, atol=1e-6)
    assert (out.classes[~finite] == -1).all() and (out.scores[~finite] == 0).all()


@pytest.mark.parametrize("k", [4, 10, 25])
def test_weighted_average_equals_dense(k):
    models, _ = random_models(0, num_models=3, num_videos=50, num_classes=30, k=6)
    weights = {"model_0": 0.2, "model_1": 0.5, "model_2": 1.3}
    out = weighted_average(models, weights, top_k=k, chunk_size=7)
    assert out.classes.shape == (50, k)
    assert_matches(out, *dense_reference(models, weights, 30, k))
    assert out.metadata["weights"]["model_2"] == pytest.approx(1.3 / 2.0)
    assert np.all(np.diff(out.scores, axis=1) <= 0)  # rows sorted by score


def test_plain_average_and_default_k():
    models, labels = random_models(1, num_models=3, num_videos=40, num_classes=20, k=5)
    out = average(models)
    assert out.top_k == 5 and out.metadata["method"] == "mean"
    assert_matches(out, *dense_reference(models, dict.fromkeys(models, 1.0), 20, 5))
    for got, row in zip(out.labels, labels):
        np.testing.assert_array_equal(got, np.flatnonzero(row))


def test_rank_average_equals_dense_ranks():
    models, _ = random_models(2, num_models=2, num_videos=30, num_classes=15, k=4)

    def global_ranks(p):
        flat = p.scores.ravel()
        ranks = np.argsort(np.argsort(flat)) + 1.0  # no ties in random scores
        return Predictions(
            p.ids, p.classes, (ranks / flat.size).reshape(p.scores.shape), p.labels, p.metadata
        )

    out = rank_average(models)
    weights = dict.fromkeys(models, 1.0)
    assert_matches(out, *dense_reference(models, weights, 15, 4, transform=global_ranks))
    ranked = rank_transform(models["model_0"])
    assert ranked.scores.max() == pytest.approx(1.0) and ranked.scores.min() > 0


def test_rows_aligned_by_id():
    models, _ = random_models(3, num_models=2, num_videos=30, num_classes=15, k=4)
    permutation = np.random.default_rng(0).permutation(30)
    shuffled = {"model_0": models["model_0"], "model_1": models["model_1"].take(permutation)}
    a = average(models)
    b = average(shuffled)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.classes, b.classes)
    np.testing.assert_allclose(a.scores, b.scores)


def test_weight_errors():
    models, _ = random_models(4, num_models=2, num_videos=10, num_classes=8, k=3)
    with pytest.raises(UsageError, match="'nope' has a weight but no predictions"):
        weighted_average(models, {"nope": 1.0})
    with pytest.raises(UsageError, match=">= 0"):
        weighted_average(models, {"model_0": -1.0, "model_1": 2.0})
    with pytest.raises(UsageError, match="sum to 0"):
        weighted_average(models, {"model_0": 0.0})
    with pytest.raises(UsageError, match="no predictions given"):
        average({})
