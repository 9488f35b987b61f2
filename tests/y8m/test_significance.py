"""The paired bootstrap: exact weighted GAP/AP, resampling, coverage and the comparison."""

import numpy as np
import pytest

from y8m import metrics, significance
from y8m.errors import UsageError
from y8m.predictions import Predictions


def dense_case(seed, num_videos=150, num_classes=12, decimals=1):
    """Scores rounded to DECIMALS (many ties, within and across videos) and multi-hot labels."""
    rng = np.random.default_rng(seed)
    labels = rng.random((num_videos, num_classes)) < 0.15
    dense = rng.random((num_videos, num_classes)) * 0.6 + labels * rng.random(labels.shape) * 0.4
    return np.round(dense, decimals), labels


def top_k(dense, labels, k):
    """The pooled top-k entries of dense scores as flat (video, class, score, hit) arrays."""
    index, scores = metrics.top_k_per_row(dense, k, labels=labels)
    hits = np.take_along_axis(labels, index, axis=1)
    video = np.repeat(np.arange(len(dense)), index.shape[1])
    return video, index.ravel(), scores.ravel(), hits.ravel()


def build(dense, labels, k):
    video, classes, scores, hits = top_k(dense, labels, k)
    gap = significance.Ranking(video, scores, hits, labels.sum(axis=1))
    by_class = significance.ClassRanking(
        video, classes, scores, hits, *np.nonzero(labels), len(dense), labels.shape[1]
    )
    return gap, by_class


def reference(dense, labels, k):
    """metrics' GAP@k and per-class AP of the pooled top-k."""
    video, classes, scores, hits = top_k(dense, labels, k)
    gap = metrics.gap_topk(scores.reshape(len(dense), -1), hits.reshape(len(dense), -1),
                           labels.sum(), k)  # fmt: skip
    ap = metrics.average_precision_by_class(classes, scores, hits, labels.sum(axis=0))
    return gap, ap


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("decimals", [1, 6])
def test_unit_weights_equal_metrics_exactly_with_ties(seed, decimals):
    dense, labels = dense_case(seed, decimals=decimals)
    gap, by_class = build(dense, labels, 5)
    expected_gap, expected_ap = reference(dense, labels, 5)
    assert abs(gap.gap()[0] - expected_gap) <= 1e-12
    ap = by_class.average_precision()[0]
    np.testing.assert_array_equal(np.isnan(ap), np.isnan(expected_ap))
    np.testing.assert_allclose(ap, expected_ap, rtol=0, atol=1e-12)
    # All counts 1 as a resample gives the same values.
    ones = np.ones((1, len(dense)), np.int32)
    assert abs(gap.gap(ones)[0] - expected_gap) <= 1e-12


@pytest.mark.parametrize("seed", range(3))
def test_weights_equal_the_resampled_videos_written_out(seed):
    # A video drawn w times is w copies of it: the weighted GAP and per-class AP must equal
    # metrics on that dataset, copies tied with each other and with other videos included.
    dense, labels = dense_case(seed, num_videos=80)
    gap, by_class = build(dense, labels, 4)
    for counts in significance.resample_counts(len(dense), 6, seed=seed, chunk_size=4):
        got_gap, got_ap = gap.gap(counts), by_class.average_precision(counts)
        for row, c in enumerate(counts):
            rows = np.repeat(np.arange(len(dense)), c)
            expected_gap, expected_ap = reference(dense[rows], labels[rows], 4)
            assert abs(got_gap[row] - expected_gap) <= 1e-12
            np.testing.assert_array_equal(np.isnan(got_ap[row]), np.isnan(expected_ap))
            np.testing.assert_allclose(got_ap[row], expected_ap, rtol=0, atol=1e-12)
    assert counts.max() >= 3  # copies beyond the second were exercised


def test_resample_counts_are_seeded_multinomial_and_independent_of_chunks():
    whole = np.concatenate(list(significance.resample_counts(50, 40, seed=3, chunk_size=40)))
    pieces = np.concatenate(list(significance.resample_counts(50, 40, seed=3, chunk_size=7)))
    np.testing.assert_array_equal(whole, pieces)
    assert whole.shape == (40, 50) and whole.dtype == np.int32
    assert (whole.sum(axis=1) == 50).all() and whole.min() >= 0
    other = np.concatenate(list(significance.resample_counts(50, 40, seed=4)))
    assert not np.array_equal(whole, other)
    # Each count is Binomial(50, 1/50): mean 1, variance 0.98.
    many = np.concatenate(list(significance.resample_counts(50, 2000, seed=0, chunk_size=500)))
    assert many.mean() == 1.0 and abs(many.var() - 0.98) < 0.05


def test_bootstrap_pairs_statistics_on_the_same_resamples():
    dense, labels = dense_case(0, decimals=6)
    gap, _ = build(dense, labels, 5)
    first, second = significance.bootstrap([gap.gap, gap.gap], len(dense), 50, seed=1,
                                           chunk_size=8)  # fmt: skip
    np.testing.assert_array_equal(first, second)
    again = significance.bootstrap([gap.gap], len(dense), 50, seed=1, chunk_size=50)[0]
    np.testing.assert_array_equal(first, again)
    assert first.shape == (50,) and np.std(first) > 0


def test_percentile_interval_and_p_value():
    samples = np.arange(1, 101, dtype=float) - 10.5  # -9.5 .. 89.5
    interval = significance.percentile_interval(40.0, samples, 0.9)
    assert interval.low == pytest.approx(np.quantile(samples, 0.05))
    assert interval.high == pytest.approx(np.quantile(samples, 0.95))
    assert interval.p_value == pytest.approx(0.10) and interval.num_resamples == 100
    assert interval.significant is np.True_ or interval.significant == (interval.low > 0)
    assert interval.as_dict()["significant"] is False  # low < 0 < high
    per_class = np.stack([samples + 20, -samples - 20, np.full(100, np.nan)], axis=1)
    per_class[:50, 1] = np.nan
    intervals = significance.percentile_interval(np.zeros(3), per_class, 0.9)
    np.testing.assert_array_equal(intervals.significant, [True, True, False])
    np.testing.assert_array_equal(intervals.num_resamples, [100, 50, 0])
    assert np.isnan(intervals.low[2]) and np.isnan(intervals.p_value[2])
    assert intervals.p_value[1] == 1.0 and intervals.p_value[0] == 0.0
    with pytest.raises(ValueError, match="confidence"):
        significance.percentile_interval(0.0, samples, 1.0)


def planted(num_videos, rng, num_classes=12):
    """Videos from one fixed distribution; A separates labels a little better than B, and
    both share most of their noise (so pairing matters)."""
    labels = rng.random((num_videos, num_classes)) < 0.15
    signal = np.where(labels, 1.0, -1.0)
    shared = rng.standard_normal(labels.shape)
    a = 1.1 * signal + shared + 0.6 * rng.standard_normal(labels.shape)
    b = 0.9 * signal + shared + 0.6 * rng.standard_normal(labels.shape)
    return a, b, labels


def bootstrap_difference(a, b, labels, k, resamples, seed):
    """(GAP(A) - GAP(B), its 95% Interval) from the paired bootstrap."""
    ranking_a, _ = build(a, labels, k)
    ranking_b, _ = build(b, labels, k)
    samples_a, samples_b = significance.bootstrap(
        [ranking_a.gap, ranking_b.gap], len(labels), resamples, seed=seed, chunk_size=200
    )
    estimate = ranking_a.gap()[0] - ranking_b.gap()[0]
    return significance.percentile_interval(estimate, samples_a - samples_b, 0.95)


def test_interval_covers_a_known_difference_at_the_stated_rate():
    # The truth: the GAP difference on a large population from the same distribution.
    k = 5
    a, b, labels = planted(200_000, np.random.default_rng(12345))
    truth = metrics.gap(a, labels, k) - metrics.gap(b, labels, k)
    assert truth > 0.005
    covered, widths, estimates = [], [], []
    for repetition in range(80):
        a, b, labels = planted(600, np.random.default_rng(repetition))
        interval = bootstrap_difference(a, b, labels, k, 1000, seed=repetition)
        covered.append(interval.low <= truth <= interval.high)
        widths.append(interval.high - interval.low)
        estimates.append(interval.estimate)
    assert np.mean(covered) >= 0.85
    # The intervals are as wide as the spread of the estimates says (not merely wide).
    spread = 2 * 1.96 * np.std(estimates)
    assert 0.75 <= np.median(widths) / spread <= 1.33


def test_interval_shrinks_with_more_videos():
    widths = []
    for n in (300, 4800):
        a, b, labels = planted(n, np.random.default_rng(7))
        interval = bootstrap_difference(a, b, labels, 5, 400, seed=0)
        widths.append(interval.high - interval.low)
    # Width ~ 1/sqrt(n): 16x the videos, about a quarter of the width.
    assert 2.5 < widths[0] / widths[1] < 6.5


def stores(seed, num_videos=120, num_classes=10, k=4):
    """Two labelled Predictions on the same videos: A close to the labels, B noisier."""
    rng = np.random.default_rng(seed)
    labels = rng.random((num_videos, num_classes)) < 0.2
    out = []
    for noise in (0.3, 1.5):
        dense = labels + noise * rng.random(labels.shape)
        index, scores = metrics.top_k_per_row(dense, k, sort=True)
        out.append(
            Predictions([f"v{v:03d}" for v in range(num_videos)], index, scores,
                        [np.flatnonzero(row) for row in labels], {"num_classes": num_classes})
        )  # fmt: skip
    return out


def test_compare_predictions_matches_metrics_and_is_paired():
    a, b = stores(0)
    result = significance.compare_predictions(a, b, top_k=3, num_resamples=300, seed=2)
    assert result.gap_a == pytest.approx(a.gap(3), abs=1e-12)
    assert result.gap_b == pytest.approx(b.gap(3), abs=1e-12)
    assert result.difference.estimate == pytest.approx(result.gap_a - result.gap_b)
    assert result.difference.significant and result.difference.low > 0
    assert result.difference.p_value == 0.0 and result.num_resamples == 300
    assert result.ap_difference.estimate.shape == (10,)
    np.testing.assert_array_equal(
        result.positives, np.bincount(np.concatenate(a.labels), minlength=10)
    )
    # The same model against itself: every resample's difference is exactly 0.
    same = significance.compare_predictions(a, a, top_k=3, num_resamples=100)
    assert same.difference.low == same.difference.high == 0.0
    assert not same.difference.significant and same.difference.p_value == 1.0
    assert not same.ap_difference.significant.any()


def test_paired_predictions_aligns_by_id_and_names_what_differs():
    a, b = stores(1)
    order = np.random.default_rng(0).permutation(b.num_videos)
    _, shuffled = significance.paired_predictions(a, b.take(order))
    np.testing.assert_array_equal(shuffled.ids, a.ids)
    np.testing.assert_array_equal(shuffled.classes, b.classes)
    message = (
        r"^A \(120 videos\) and B \(117 videos\) cover different videos \(3 only in the first, "
        r"0 only in the second; e\.g\. 'v11[789]' only in the first\)"
    )
    with pytest.raises(UsageError, match=message):
        significance.paired_predictions(a, b.take(np.arange(117)))
    unlabelled = Predictions(b.ids, b.classes, b.scores, None)
    with pytest.raises(UsageError, match="^B has no labels"):
        significance.paired_predictions(a, unlabelled)
    relabelled = Predictions(b.ids, b.classes, b.scores, [x[:0] for x in b.labels])
    with pytest.raises(UsageError, match="different labels for"):
        significance.paired_predictions(a, relabelled)
