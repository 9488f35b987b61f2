import numpy as np
import pandas as pd
import pytest

from submissions.segments import SegmentTopK, load_segment_label_ids, segment_map
from tests.submissions.helpers import write_text
from y8m.errors import UsageError


def _brute_force(segment_ids, scores, class_ids, max_per_class, top_k):
    """Per segment its top_k rated classes, then per class every entry sorted, cut to the cap."""
    per_class = {int(c): [] for c in class_ids}
    for seg, row in zip(segment_ids, scores):
        rated = sorted(((row[c], int(c)) for c in class_ids), reverse=True)[:top_k]
        for score, c in rated:
            per_class[c].append((score, seg))
    return {
        c: [seg for _, seg in sorted(entries, reverse=True)[:max_per_class]]
        for c, entries in per_class.items()
        if entries
    }


@pytest.mark.parametrize("top_k", [3, 40])
def test_segment_topk_equals_brute_force_and_stays_bounded(rng, top_k):
    num_classes, cap = 40, 12
    class_ids = np.sort(rng.choice(num_classes, 15, replace=False))
    topk = SegmentTopK(class_ids, max_per_class=cap, top_k=top_k)
    all_ids, all_scores = [], []
    for batch, size in enumerate([50, 0, 7, 120, 33, 64]):
        ids = [f"v{batch}{i:03d}:{5 * (i % 60)}" for i in range(size)]
        scores = rng.random((size, num_classes)).astype(np.float32)
        topk.update(ids, scores)
        assert topk.buffered.max() <= 2 * cap
        all_ids += ids
        all_scores.append(scores)
    assert topk.num_segments == len(all_ids)

    want = _brute_force(all_ids, np.concatenate(all_scores), class_ids, cap, top_k)
    got = topk.result()
    assert got == want
    assert list(got) == [c for c in class_ids.tolist() if c in want]
    assert all(len(v) == cap for v in got.values())


def test_segment_topk_restricts_to_rated_classes():
    scores = np.zeros((2, 6))
    scores[0] = [0.9, 0.1, 0.8, 0.0, 0.95, 0.2]  # class 4 is best but not rated
    scores[1] = [0.1, 0.7, 0.3, 0.0, 0.99, 0.6]
    got = SegmentTopK([0, 2, 5], top_k=1).update(["a:0", "a:5"], scores).result()
    assert got == {0: ["a:0"], 5: ["a:5"]}


def test_segment_topk_checks_arguments():
    with pytest.raises(UsageError):
        SegmentTopK([1, 1])
    with pytest.raises(UsageError):
        SegmentTopK([1], max_per_class=0)
    with pytest.raises(ValueError, match="class id 9"):
        SegmentTopK([9]).update(["a:0"], np.zeros((1, 5)))


def _ratings(rows):
    return pd.DataFrame(rows, columns=["id", "class", "start_time", "score"])


def test_segment_map_hand_made_case():
    ratings = _ratings(
        [
            ("a", 1, 0, 1.0),
            ("a", 1, 5, 0.0),
            ("b", 1, 0, 1.0),
            ("c", 1, 10, 1.0),  # a positive nobody predicts: lowers recall
            ("a", 2, 0, 0.0),
            ("b", 2, 5, 1.0),
            ("d", 3, 0, 0.0),  # class 3 has no positive
            ("e", 4, 0, 1.0),  # class 4 is not submitted
        ]
    )
    submission = {1: ["a:5", "x:0", "a:0", "b:0"], 2: ["b:5", "a:0"], 3: ["d:0"]}
    result = segment_map(submission, ratings)
    # class 1, unrated x:0 dropped: [miss, hit, hit] -> (1/2 + 2/3) / 3 positives; class 2: 1.
    ap1 = (1 / 2 + 2 / 3) / 3
    assert result["aps"] == {1: pytest.approx(ap1), 2: pytest.approx(1.0)}
    assert result["map"] == pytest.approx((ap1 + 1.0) / 2)
    assert result["skipped_classes"] == [3]
    assert result["unsubmitted_classes"] == 1
    assert (result["num_positives"], result["num_rated"]) == (5, 8)

    # top_n cuts before unrated predictions are dropped: class 1 keeps only a:5 (a miss).
    cut = segment_map(submission, ratings, top_n=2)
    assert cut["aps"][1] == 0.0 and cut["map"] == pytest.approx(0.5)


def test_segment_map_counts_a_repeated_segment_once():
    ratings = _ratings([("a", 1, 0, 1.0), ("b", 1, 0, 1.0)])
    assert segment_map({1: ["a:0", "a:0"]}, ratings)["map"] == pytest.approx(0.5)


def test_load_segment_label_ids(tmp_path):
    ids = load_segment_label_ids(write_text(tmp_path / "ids.csv", "Index\n3\n17\n\n1000\n"))
    assert ids.tolist() == [3, 17, 1000] and ids.dtype == np.int64
    with pytest.raises(UsageError, match="line 1"):
        load_segment_label_ids(write_text(tmp_path / "bad.csv", "Class\n3\n"))
    with pytest.raises(UsageError, match="line 3: class id 'x'"):
        load_segment_label_ids(write_text(tmp_path / "bad.csv", "Index\n3\nx\n"))
    with pytest.raises(UsageError, match="line 3: class id 3 is listed twice"):
        load_segment_label_ids(write_text(tmp_path / "bad.csv", "Index\n3\n3\n"))
