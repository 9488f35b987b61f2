"""y8m.metrics against hand-computed cases and a slow reference written from the definitions."""

import heapq

import numpy as np
import pytest

from y8m import metrics

# ----------------------------------------------------------------------------------------------
# Slow reference: loops and heaps, straight from reference/yt8m_facts.md 2.1-2.5.


def ref_ap(pairs, total_positives):
    """AP of (score, actual) pairs: rank by score, sum precision at each positive, divide by P."""
    if total_positives == 0:
        return 0.0
    heap = [(-score, i, actual) for i, (score, actual) in enumerate(pairs)]
    heapq.heapify(heap)
    ap, positives, rank = 0.0, 0, 0
    while heap:
        _, _, actual = heapq.heappop(heap)
        rank += 1
        if actual > 0:
            positives += 1
            ap += positives / rank
    return ap / total_positives


def ref_top_k(row, k):
    k = min(k, len(row))
    return sorted(range(len(row)), key=lambda c: -row[c])[:k]


def ref_gap(predictions, labels, k=20):
    pairs = []
    for row, lab in zip(predictions, labels):
        pairs.extend((row[c], lab[c]) for c in ref_top_k(row, k))
    return ref_ap(pairs, float(np.sum(labels)))


def ref_hit_at_one(predictions, labels):
    total = 0.0
    for row, lab in zip(predictions, labels):
        best = max(range(len(row)), key=lambda c: (row[c], -c))
        total += lab[best]
    return total / len(predictions)


def ref_perr(predictions, labels):
    total = 0.0
    for row, lab in zip(predictions, labels):
        num = int(sum(lab))
        if num == 0:
            continue  # official: all V classes taken, no label among them -> precision 0
        top = ref_top_k(row, num)
        total += sum(lab[c] for c in top if row[c] > 0) / num
    return total / len(predictions)


def ref_map(predictions, labels, k=20):
    num_classes = predictions.shape[1]
    per_class = [[] for _ in range(num_classes)]
    for row, lab in zip(predictions, labels):
        for c in ref_top_k(row, k):
            per_class[c].append((row[c], lab[c]))
    aps = []
    for c in range(num_classes):
        positives = float(np.sum(labels[:, c]))
        if positives > 0:
            aps.append(ref_ap(per_class[c], positives))
    return float(np.mean(aps)) if aps else 0.0


def random_case(seed, n=60, c=40, label_rate=0.06, signal=1.0):
    """Continuous random scores (no ties) with some signal; float64 as the comparison needs."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, c)) < label_rate).astype(np.float64)
    predictions = rng.random((n, c)) + signal * labels * rng.random((n, c))
    return predictions / predictions.max(), labels


# ----------------------------------------------------------------------------------------------
# Hand-computed cases.


def test_gap_hand_computed():
    # Two videos, 3 classes, top_k=2. Pairs ranked: 0.9(hit) 0.8(miss) 0.7(hit) 0.6(miss).
    # Positives in the ground truth: 3 (one never predicted). AP = (1/1 + 2/3) / 3.
    predictions = np.array([[0.9, 0.8, 0.1], [0.7, 0.2, 0.6]])
    labels = np.array([[1, 0, 1], [1, 0, 0]])
    assert metrics.gap(predictions, labels, top_k=2) == pytest.approx((1 + 2 / 3) / 3)


def test_gap_no_positives_is_zero():
    assert metrics.gap(np.random.rand(3, 4), np.zeros((3, 4))) == 0.0


def test_hit_at_one_hand_computed():
    predictions = np.array([[0.1, 0.9], [0.8, 0.2], [0.5, 0.5], [0.5, 0.5]])
    labels = np.array([[0, 1], [0, 1], [1, 0], [1, 1]])
    # Third row ties a label with a non-label: the non-label ranks first (the official first
    # argmax would count it). Fourth row: every tied class is a label, so it counts.
    assert metrics.hit_at_one(predictions, labels) == pytest.approx(2 / 4)


def test_perr_hand_computed_with_unlabelled_video():
    predictions = np.array(
        [
            [0.9, 0.8, 0.1, 0.0],  # 2 labels {0, 2}: top-2 = {0, 1} -> 1/2
            [0.3, 0.2, 0.1, 0.4],  # 1 label {3}: top-1 = {3} -> 1
            [0.3, 0.2, 0.1, 0.4],  # no label: 0, still counted
        ]
    )
    labels = np.array([[1, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]])
    assert metrics.perr(predictions, labels) == pytest.approx((0.5 + 1.0 + 0.0) / 3)


def test_perr_ignores_non_positive_scores():
    predictions = np.array([[0.0, -1.0, -2.0]])
    labels = np.array([[1, 0, 0]])
    assert metrics.perr(predictions, labels) == 0.0


def test_map_hand_computed_filters_empty_classes():
    # top_k=1: video 0 predicts class 0 (hit), video 1 predicts class 0 (miss), video 2 class 1
    # (miss). Class 0: pooled [0.9 hit, 0.8 miss], 1 positive -> AP 1. Class 1: 1 positive
    # (video 1) never predicted -> AP 0. Class 2: no positive -> left out.
    predictions = np.array([[0.9, 0.1, 0.0], [0.8, 0.7, 0.0], [0.1, 0.6, 0.2]])
    labels = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0]])
    assert metrics.mean_average_precision(predictions, labels, top_k=1) == pytest.approx(0.5)


def test_gap_topk_hand_computed_and_extra_columns():
    scores = np.array([[0.2, 0.9, 0.5], [0.7, 0.1, 0.3]])
    hits = np.array([[0, 1, 0], [1, 0, 0]])
    # top_k=2 keeps 0.9(h) 0.5 from row 0 and 0.7(h) 0.3 from row 1: ranked 0.9h 0.7h 0.5 0.3.
    assert metrics.gap_topk(scores, hits, num_positives=4, top_k=2) == pytest.approx(2 / 4)
    # Padding (-inf, never a hit) changes nothing.
    padded = np.concatenate([scores, np.full((2, 2), -np.inf)], axis=1)
    assert metrics.gap_topk(padded, np.pad(hits, ((0, 0), (0, 2))), 4, top_k=20) == pytest.approx(
        metrics.gap_topk(scores, hits, 4, top_k=20)
    )


def test_top_k_per_row_ties_and_sorting():
    x = np.array([[0.5, 0.5, 0.5, 0.1], [0.0, 3.0, 2.0, 1.0]], np.float32)
    index, scores = metrics.top_k_per_row(x, 2, sort=True)
    assert index.shape == (2, 2) and index.dtype == np.int32
    np.testing.assert_array_equal(scores[0], [0.5, 0.5])
    np.testing.assert_array_equal(index[1], [1, 2])
    np.testing.assert_array_equal(scores[1], [3.0, 2.0])


# ----------------------------------------------------------------------------------------------
# Against the slow reference on random inputs without ties.


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [1, 5, 20])
def test_dense_metrics_match_reference(seed, k):
    predictions, labels = random_case(seed)
    assert metrics.gap(predictions, labels, top_k=k) == pytest.approx(
        ref_gap(predictions, labels, k), abs=1e-9
    )
    assert metrics.mean_average_precision(predictions, labels, top_k=k) == pytest.approx(
        ref_map(predictions, labels, k), abs=1e-9
    )


@pytest.mark.parametrize("seed", range(4))
def test_hit_and_perr_match_reference(seed):
    predictions, labels = random_case(seed, label_rate=0.15)
    labels[0] = 0  # a video without labels
    predictions[1, :5] = -predictions[1, :5]  # some non-positive scores
    assert metrics.hit_at_one(predictions, labels) == pytest.approx(
        ref_hit_at_one(predictions, labels), abs=1e-12
    )
    assert metrics.perr(predictions, labels) == pytest.approx(
        ref_perr(predictions, labels), abs=1e-12
    )


@pytest.mark.parametrize("seed", range(3))
def test_evaluator_streaming_equals_dense_and_reference(seed):
    predictions, labels = random_case(seed, n=90, c=30, label_rate=0.1)
    predictions = predictions.astype(np.float32).astype(np.float64)  # a realistic input range
    evaluator = metrics.Evaluator(num_classes=30, top_k=20)
    for start in range(0, 90, 17):  # uneven batches
        evaluator.update(predictions[start : start + 17], labels[start : start + 17])
    result = evaluator.result()
    assert result["num_videos"] == 90
    assert result["gap"] == pytest.approx(ref_gap(predictions, labels), abs=1e-9)
    assert result["map"] == pytest.approx(ref_map(predictions, labels), abs=1e-9)
    assert result["hit_at_one"] == pytest.approx(ref_hit_at_one(predictions, labels), abs=1e-12)
    assert result["perr"] == pytest.approx(ref_perr(predictions, labels), abs=1e-12)


def test_evaluator_keeps_only_top_k_and_handles_many_labels():
    rng = np.random.default_rng(7)
    predictions = rng.random((20, 50))
    labels = np.zeros((20, 50))
    labels[0, :30] = 1  # more labels than top_k: PERR needs a deeper top list
    labels[1:, 3] = 1
    evaluator = metrics.Evaluator(num_classes=50, top_k=5)
    evaluator.update(predictions, labels)
    assert sum(a.size for a in evaluator._scores) == 20 * 5
    assert evaluator.result()["perr"] == pytest.approx(ref_perr(predictions, labels), abs=1e-12)
    evaluator.reset()
    assert evaluator.result()["num_videos"] == 0


def test_gap_topk_equals_dense_gap():
    predictions, labels = random_case(11, n=50, c=60)
    index, scores = metrics.top_k_per_row(predictions, 30)  # unsorted, wider than top_k
    hits = np.take_along_axis(labels, index, axis=1)
    assert metrics.gap_topk(scores, hits, labels.sum(), top_k=20) == pytest.approx(
        metrics.gap(predictions, labels, top_k=20), abs=1e-12
    )


def test_sklearn_cross_check():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    predictions, labels = random_case(5, n=40, c=25, label_rate=0.1)
    # With top_k = C every positive is in the pooled list, so GAP is sklearn's micro AP.
    expected = sklearn_metrics.average_precision_score(labels.ravel(), predictions.ravel())
    assert metrics.gap(predictions, labels, top_k=25) == pytest.approx(expected, abs=1e-9)
    has_positive = labels.sum(axis=0) > 0
    per_class = [
        sklearn_metrics.average_precision_score(labels[:, c], predictions[:, c])
        for c in np.flatnonzero(has_positive)
    ]
    assert metrics.mean_average_precision(predictions, labels, top_k=None) == pytest.approx(
        np.mean(per_class), abs=1e-9
    )


def test_float32_large_input_matches_float64_gap():
    rng = np.random.default_rng(3)
    labels = (rng.random((3000, 200)) < 0.02).astype(np.float32)
    predictions = (rng.random((3000, 200)) + labels * 0.5).astype(np.float32)
    assert metrics.gap(predictions, labels) == pytest.approx(
        metrics.gap(predictions.astype(np.float64), labels.astype(np.float64)), abs=1e-6
    )


def test_shape_errors():
    with pytest.raises(ValueError, match="must both be"):
        metrics.gap(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="expects"):
        metrics.Evaluator(num_classes=5).update(np.zeros((2, 3)), np.zeros((2, 3)))


# ----------------------------------------------------------------------------------------------
# Ties: one rule everywhere (docs/metrics.md): by score, then negatives before positives, then
# the lower class index. Slow references with that order, then hand-computed cases.


def tie_order(row, lab):
    return sorted(range(len(row)), key=lambda c: (-row[c], lab[c] > 0, c))


def ref_ap_ties(pairs, total_positives):
    """AP of (score, actual) pairs ranked by score, misses before hits on equal scores."""
    if total_positives == 0:
        return 0.0
    ap, positives = 0.0, 0
    ranked = sorted(pairs, key=lambda pair: (-pair[0], pair[1] > 0))
    for rank, (_, actual) in enumerate(ranked, start=1):
        if actual > 0:
            positives += 1
            ap += positives / rank
    return ap / total_positives


def ref_all_ties(predictions, labels, k=20):
    """gap, map, hit_at_one, perr under the tie rule, with loops."""
    pairs, per_class, hit, perr = [], [[] for _ in range(labels.shape[1])], 0.0, 0.0
    for row, lab in zip(predictions, labels):
        order = tie_order(row, lab)
        for c in order[:k]:
            pairs.append((row[c], lab[c]))
            per_class[c].append((row[c], lab[c]))
        hit += lab[order[0]]
        num = int(sum(lab))
        if num:
            perr += sum(lab[c] for c in order[:num] if row[c] > 0) / num
    aps = [
        ref_ap_ties(per_class[c], labels[:, c].sum())
        for c in range(labels.shape[1])
        if labels[:, c].sum() > 0
    ]
    return {
        "gap": ref_ap_ties(pairs, labels.sum()),
        "map": float(np.mean(aps)) if aps else 0.0,
        "hit_at_one": hit / len(labels),
        "perr": perr / len(labels),
    }


def tie_heavy_case(seed, n=70, c=30, label_rate=0.15):
    """Scores rounded to one decimal: most rows tie at the top-k cut, across videos too."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, c)) < label_rate).astype(np.float64)
    predictions = np.round(rng.random((n, c)) * 0.7 + 0.3 * labels * rng.random((n, c)), 1)
    labels[0] = 0  # a video without labels
    labels[1, :12] = 1  # more labels than most top-k cuts
    return predictions, labels


def dense_results(predictions, labels, k):
    return {
        "gap": metrics.gap(predictions, labels, top_k=k),
        "map": metrics.mean_average_precision(predictions, labels, top_k=k),
        "hit_at_one": metrics.hit_at_one(predictions, labels),
        "perr": metrics.perr(predictions, labels),
    }


def test_tie_example_from_the_issue():
    # Three classes tie at 0.5; only class 2 is a label. The cut at k=1 keeps a negative.
    predictions = np.array([[0.5, 0.5, 0.5, 0.1]])
    labels = np.array([[0, 0, 1, 1]])
    evaluator = metrics.Evaluator(num_classes=4, top_k=1)
    evaluator.update(predictions, labels)
    assert metrics.gap(predictions, labels, top_k=1) == 0.0
    assert evaluator.result()["gap"] == 0.0
    # k=3 keeps all three tied entries, ranked miss, miss, hit: AP = (1/3) / 2 positives.
    assert metrics.gap(predictions, labels, top_k=3) == pytest.approx(1 / 6)
    assert metrics.gap_topk(predictions, labels, 2, top_k=3) == pytest.approx(1 / 6)
    # Hit@1: a non-label shares the top score. PERR: top-2 = class 0 or 1 (misses) -> 0.
    assert metrics.hit_at_one(predictions, labels) == 0.0
    assert metrics.perr(predictions, labels) == 0.0
    assert evaluator.result()["hit_at_one"] == 0.0 and evaluator.result()["perr"] == 0.0
    index, scores = metrics.top_k_per_row(predictions, 2, sort=True, labels=labels)
    np.testing.assert_array_equal(index, [[0, 1]])  # negatives first, then by class
    index, _ = metrics.top_k_per_row(predictions, 3, sort=True, labels=labels)
    np.testing.assert_array_equal(index, [[0, 1, 2]])
    index, _ = metrics.top_k_per_row(predictions, 2, labels=1 - labels)
    np.testing.assert_array_equal(index, [[0, 2]])  # class 1 is the only positive among ties


def test_top_k_per_row_without_labels_keeps_the_lower_class():
    x = np.array([[0.1, 0.5, 0.5, 0.5, 0.9], [0.5, 0.5, 0.2, 0.5, 0.5]], np.float32)
    index, scores = metrics.top_k_per_row(x, 3, sort=True)
    np.testing.assert_array_equal(index, [[4, 1, 2], [0, 1, 3]])
    np.testing.assert_array_equal(scores, np.float32([[0.9, 0.5, 0.5], [0.5, 0.5, 0.5]]))
    # The result does not depend on chunking, and NaN ranks last.
    np.testing.assert_array_equal(metrics.top_k_per_row(x, 3, sort=True, chunk_size=1)[0], index)
    y = np.array([[np.nan, 0.2, np.nan, 0.1]])
    np.testing.assert_array_equal(metrics.top_k_per_row(y, 2, sort=True)[0], [[1, 3]])


def test_pooled_ties_across_videos_rank_misses_first():
    # Three videos put their only prediction at 0.5: hit, hit, miss; 2 positives in all.
    # Ranked miss, hit, hit: AP = (1/2 + 2/3) / 2, whatever the order of the videos.
    want = (1 / 2 + 2 / 3) / 2
    scores = np.array([[0.5], [0.5], [0.5]])
    for hits in ([[1], [1], [0]], [[0], [1], [1]], [[1], [0], [1]]):
        assert metrics.gap_topk(scores, np.array(hits), 2, top_k=1) == pytest.approx(want)
    # Dense: video 0 ranks 0.9 (hit) then 0.5 (miss); video 1 ranks 0.5 (hit) then 0.1.
    # Pooled: 0.9 h, 0.5 miss, 0.5 h, 0.1 -> (1/1 + 2/3) / 2.
    predictions = np.array([[0.9, 0.5], [0.1, 0.5]])
    labels = np.array([[1, 0], [0, 1]])
    assert metrics.gap(predictions, labels, top_k=2) == pytest.approx((1 + 2 / 3) / 2)
    assert metrics.gap(predictions[::-1], labels[::-1], top_k=2) == pytest.approx((1 + 2 / 3) / 2)
    # mAP: class 0 gets 0.9 h and 0.1; class 1 gets 0.5 miss and 0.5 h (1/2) -> (1 + 1/2) / 2.
    predictions = np.array([[0.9, 0.5], [0.1, 0.5]])
    labels = np.array([[1, 0], [0, 1]])
    assert metrics.mean_average_precision(predictions, labels, top_k=2) == pytest.approx(0.75)


def test_perr_with_ties_does_not_depend_on_the_batch():
    # Labels {0, 2}: top-2 = class 0 (0.9, label), then of the tied 0.5s the non-label class 1.
    video = np.array([[0.9, 0.5, 0.5, 0.5, 0.2, 0.1, 0.0, 0.0]])
    video_labels = np.array([[1, 0, 1, 0, 0, 0, 0, 0]])
    assert metrics.perr(video, video_labels) == pytest.approx(1 / 2)
    # A batch mate with 6 labels makes the batch's top list deeper; the video still scores 1/2.
    mate = np.array([[0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]])
    mate_labels = np.array([[1, 1, 1, 0, 1, 1, 1, 0]])  # top-6 holds 5 labels
    both = metrics.perr(np.concatenate([video, mate]), np.concatenate([video_labels, mate_labels]))
    assert both == pytest.approx((1 / 2 + 5 / 6) / 2)
    evaluator = metrics.Evaluator(num_classes=8, top_k=2)
    evaluator.update(np.concatenate([video, mate]), np.concatenate([video_labels, mate_labels]))
    assert evaluator.result()["perr"] == pytest.approx(both)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("k", [1, 5, 20])
def test_tie_heavy_metrics_match_tie_reference(seed, k):
    predictions, labels = tie_heavy_case(seed)
    want = ref_all_ties(predictions, labels, k)
    got = dense_results(predictions, labels, k)
    for name in want:
        assert got[name] == pytest.approx(want[name], abs=1e-12), name
    # Shuffling videos changes nothing; shuffling classes changes only mAP (which of several
    # tied non-label classes a cut keeps decides which class's list gets the entry).
    rng = np.random.default_rng(seed)
    rows, cols = rng.permutation(len(labels)), rng.permutation(labels.shape[1])
    shuffled = dense_results(predictions[rows], labels[rows], k)
    for name in want:
        assert shuffled[name] == pytest.approx(want[name], abs=1e-12), name
    shuffled = dense_results(predictions[:, cols], labels[:, cols], k)
    for name in ("gap", "hit_at_one", "perr"):
        assert shuffled[name] == pytest.approx(want[name], abs=1e-12), name


@pytest.mark.parametrize("seed", range(3))
def test_tie_heavy_evaluator_is_batch_independent(seed):
    predictions, labels = tie_heavy_case(seed)
    want = dense_results(predictions, labels, 5)
    index, scores = metrics.top_k_per_row(predictions, 12, labels=labels)
    assert metrics.gap_topk(scores, np.take_along_axis(labels, index, 1), labels.sum(), 5) == (
        pytest.approx(want["gap"], abs=1e-12)
    )
    for batch in (70, 1, 9, 33):
        evaluator = metrics.Evaluator(num_classes=30, top_k=5)
        for start in range(0, 70, batch):
            evaluator.update(predictions[start : start + batch], labels[start : start + batch])
        result = evaluator.result()
        for name in want:
            assert result[name] == pytest.approx(want[name], abs=1e-12), (batch, name)
    # Merged states of disjoint halves agree too.
    first, second = metrics.Evaluator(30, top_k=5), metrics.Evaluator(30, top_k=5)
    first.update(predictions[:40], labels[:40])
    second.update(predictions[40:], labels[40:])
    first.merge(second.state())
    assert first.result()["gap"] == pytest.approx(want["gap"], abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [1, 3, 8])
def test_top_k_per_row_matches_the_rule_with_ties_nan_and_inf(seed, k):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4, (40, 12)).astype(np.float32) / 4  # heavy ties
    x[rng.random(x.shape) < 0.1] = np.nan  # NaN ranks as -inf
    x[rng.random(x.shape) < 0.1] = -np.inf
    x[:8, 3:] = rng.choice([np.nan, -np.inf], (8, 9))  # rows whose k-th largest is -inf or NaN
    labels = (rng.random(x.shape) < 0.3).astype(np.float32)
    ranked = np.where(np.isnan(x), -np.inf, x)
    for lab in (labels, None):
        tie_labels = np.zeros_like(labels) if lab is None else lab
        want = np.array([tie_order(row, l_row)[:k] for row, l_row in zip(ranked, tie_labels)])
        for chunk in (None, 7):
            index, _ = metrics.top_k_per_row(x, k, sort=True, labels=lab, chunk_size=chunk)
            np.testing.assert_array_equal(index, want)
            index, _ = metrics.top_k_per_row(x, k, labels=lab, chunk_size=chunk)
            np.testing.assert_array_equal(index, np.sort(want, axis=1))
