"""Retrieval metrics with pessimistic ties."""

import numpy as np
import pytest

pytest.importorskip("torch")

from extras.milnce.metrics import ground_truth_ranks, retrieval_metrics  # noqa: E402


def _brute_force_ranks(similarity):
    ranks = []
    for i, row in enumerate(similarity):
        ranks.append(sum(1 for j, value in enumerate(row) if j != i and value >= row[i]))
    return ranks


def test_ranks_match_brute_force_with_ties():
    rng = np.random.default_rng(0)
    similarity = rng.integers(0, 4, size=(30, 30)).astype(float)  # many ties
    np.testing.assert_array_equal(ground_truth_ranks(similarity), _brute_force_ranks(similarity))


def test_metrics_on_a_known_matrix():
    similarity = np.array(
        [
            [0.9, 0.1, 0.2, 0.0],  # rank 0
            [0.5, 0.4, 0.3, 0.0],  # rank 1
            [0.7, 0.7, 0.7, 0.7],  # all tied: rank 3, not 0
            [0.1, 0.2, 0.3, 0.05],  # rank 3
        ]
    )
    m = retrieval_metrics(similarity)
    assert m["r1"] == 0.25
    assert m["r5"] == 1.0 and m["r10"] == 1.0
    assert m["median_rank"] == 3.0  # median of 0-based ranks (0, 1, 3, 3) is 2, plus 1
    assert m["mean_rank"] == pytest.approx(1 + 7 / 4)
    assert m["num_queries"] == 4
    # Video -> text is the transpose: columns rank 0, 1, 0, 1.
    transposed = retrieval_metrics(similarity.T)
    assert transposed["r1"] == 0.5 and transposed["median_rank"] == 1.5


def test_requires_square():
    with pytest.raises(ValueError):
        ground_truth_ranks(np.zeros((2, 3)))
