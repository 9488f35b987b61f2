import numpy as np
import pytest

torch = pytest.importorskip("torch")

from extras.howto100m.retrieval import (  # noqa: E402
    recall_metrics,
    retrieval_metrics,
    retrieval_ranks,
)


def brute_force_ranks(sim: np.ndarray) -> np.ndarray:
    """Pessimistic 0-based rank of the diagonal in each row, by sorting."""
    ranks = []
    for i, row in enumerate(sim):
        # Sort by score with the true item after its ties, then find it.
        order = sorted(range(len(row)), key=lambda j: (-row[j], j == i))
        ranks.append(order.index(i))
    return np.array(ranks)


@pytest.mark.parametrize("chunk_size", [1, 7, 64])
def test_ranks_match_brute_force_in_both_directions(chunk_size):
    rng = np.random.default_rng(0)
    text = rng.normal(size=(50, 8)).astype(np.float32)
    video = (text + rng.normal(size=(50, 8))).astype(np.float32)
    sim = text @ video.T
    got = retrieval_ranks(torch.tensor(text), torch.tensor(video), chunk_size)
    assert np.array_equal(got, brute_force_ranks(sim))
    got_v2t = retrieval_ranks(torch.tensor(video), torch.tensor(text), chunk_size)
    assert np.array_equal(got_v2t, brute_force_ranks(sim.T))


def test_ties_are_counted_pessimistically():
    # Text 0 and 1 are the same caption: their identical scores are a tie for each.
    text = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    video = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    ranks = retrieval_ranks(text, video)
    assert ranks.tolist() == [1, 1, 0]
    m = recall_metrics(ranks)
    assert m["r1"] == pytest.approx(1 / 3)  # the reference's equality search reported 0.75


def test_recall_metrics_values():
    m = recall_metrics(np.array([0, 0, 3, 7, 12, 40]))
    assert m == {
        "r1": pytest.approx(2 / 6),
        "r5": pytest.approx(3 / 6),
        "r10": pytest.approx(4 / 6),
        "median_rank": 6.0,  # median of 0-based ranks (3 + 7) / 2, plus one
        "mean_rank": pytest.approx(np.mean([0, 0, 3, 7, 12, 40]) + 1),
    }


def test_retrieval_metrics_perfect_and_reversed():
    emb = np.eye(20, dtype=np.float32)
    perfect = retrieval_metrics(emb, emb, chunk_size=6)
    assert perfect["num_pairs"] == 20
    assert perfect["text_to_video"]["r1"] == 1.0 and perfect["video_to_text"]["median_rank"] == 1
    shifted = retrieval_metrics(emb, np.roll(emb, 1, axis=0), chunk_size=6)
    assert shifted["text_to_video"]["r10"] == 0.0
