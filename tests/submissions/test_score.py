import numpy as np
import pandas as pd
import pytest

from submissions import formats
from submissions.score import score_submission, video_gap
from tests.submissions.helpers import random_ids, write_text
from y8m import metrics
from y8m.errors import UsageError

NUM_CLASSES = 60


def _reference_gap(dense: dict[str, np.ndarray], truth: dict[str, set[int]], top_k=20) -> float:
    """The leaderboard's GAP written out plainly: pool every video's top-k, rank, average precision."""
    pooled = []
    for vid, labels in truth.items():
        if vid in dense:
            for c in np.argsort(-dense[vid])[:top_k]:
                pooled.append((dense[vid][c], c in labels))
    pooled.sort(key=lambda pair: -pair[0])
    total_positives = sum(len(labels) for labels in truth.values())
    found, ap = 0, 0.0
    for rank, (_, hit) in enumerate(pooled, start=1):
        if hit:
            found += 1
            ap += found / rank
    return ap / total_positives


@pytest.fixture
def case(rng):
    """60 true videos (a few with more than 20 labels); a submission missing 6, with 4 extras."""
    truth_ids = random_ids(rng, 64)
    extra_ids, truth_ids = truth_ids[:4], truth_ids[4:]
    num_labels = rng.integers(1, 6, len(truth_ids))
    num_labels[:3] = 25
    truth = {
        v: set(rng.choice(NUM_CLASSES, n, replace=False).tolist())
        for v, n in zip(truth_ids, num_labels)
    }
    submitted = truth_ids[6:] + extra_ids
    # Informative scores (true labels score higher) so the GAP is far from 0 and 1, turned into
    # distinct ranks / (n + 1) rounded to 6 decimals so the text format keeps the order exactly.
    signal = rng.random((len(submitted), NUM_CLASSES))
    for i, vid in enumerate(submitted):
        signal[i, sorted(truth.get(vid, ()))] += 0.6 * rng.random()
    ranks = np.argsort(np.argsort(signal, axis=None)).reshape(signal.shape) + 1
    scores = np.round(ranks / (signal.size + 1), 6)
    assert len(np.unique(scores)) == scores.size
    return truth, submitted, scores


def _solution_frame(truth):
    return pd.DataFrame({"id": list(truth), "labels": [sorted(v) for v in truth.values()]})


@pytest.mark.parametrize("name", ["sub.csv", "sub.csv.gz"])
def test_score_equals_reference_gap(tmp_path, case, name):
    truth, submitted, scores = case
    classes = np.broadcast_to(np.arange(NUM_CLASSES), scores.shape)
    path = str(tmp_path / name)
    formats.write_video_submission(path, submitted, classes, scores)

    result = score_submission(path, _solution_frame(truth))

    dense = dict(zip(submitted, scores))
    want = _reference_gap(dense, truth)
    assert 0.2 < want < 0.9
    assert result["gap"] == pytest.approx(want, abs=1e-12)
    assert (result["videos"], result["submitted"], result["scored"]) == (60, 58, 54)
    assert (result["missing"], result["extra"]) == (6, 4)
    assert result["positives"] == sum(len(v) for v in truth.values())


def test_score_equals_dense_metrics_gap(tmp_path, case):
    truth, submitted, scores = case
    ids = [v for v in submitted if v in truth]
    rows = [submitted.index(v) for v in ids]
    labels = np.zeros((len(ids), NUM_CLASSES))
    for i, vid in enumerate(ids):
        labels[i, sorted(truth[vid])] = 1
    classes = np.broadcast_to(np.arange(NUM_CLASSES), (len(ids), NUM_CLASSES))
    path = str(tmp_path / "s.csv")
    formats.write_video_submission(path, ids, classes, scores[rows], version=2017)
    solution = {vid: truth[vid] for vid in ids}
    got = score_submission(path, _solution_frame(solution), version=2017)["gap"]
    assert got == pytest.approx(metrics.gap(scores[rows], labels, top_k=20), abs=1e-12)


def test_solution_csv_with_and_without_header(tmp_path, case):
    truth, submitted, scores = case
    classes = np.broadcast_to(np.arange(NUM_CLASSES), scores.shape)
    path = str(tmp_path / "s.csv")
    formats.write_video_submission(path, submitted, classes, scores)
    lines = [f"{v},{' '.join(map(str, sorted(c)))}" for v, c in truth.items()]
    with_header = write_text(tmp_path / "truth.csv", "VideoId,Labels\n" + "\n".join(lines) + "\n")
    bare = write_text(tmp_path / "bare.csv", "\n".join(lines) + "\n")
    want = score_submission(path, _solution_frame(truth))["gap"]
    assert score_submission(path, with_header)["gap"] == pytest.approx(want, abs=1e-12)
    assert score_submission(path, bare)["gap"] == pytest.approx(want, abs=1e-12)


def test_video_gap_counts_only_top_k_and_padding():
    labels = pd.DataFrame({"id": ["a", "b"], "labels": [[1, 2], [3]]})
    classes = np.array([[1, 5, 2, -1], [3, -1, -1, -1]])
    scores = np.array([[0.9, 0.8, 0.1, 0.95], [0.5, 0.99, 0.99, 0.99]])
    # top-2 of "a": 1 (0.9, hit), 5 (0.8); "b": 3 (0.5, hit). Ranking 0.9 h, 0.8, 0.5 h.
    result = video_gap(["a", "b"], classes, scores, labels, top_k=2)
    assert result["gap"] == pytest.approx((1 / 1 + 2 / 3) / 3)
    assert result["hits"] == 2


def test_solution_errors(tmp_path):
    sub = write_text(tmp_path / "s.csv", "VideoId,LabelConfidencePairs\na,1 0.5\n")
    bad = write_text(tmp_path / "truth.csv", "a,1 2\nb,x\n")
    with pytest.raises(UsageError, match="line 2"):
        score_submission(sub, bad)
    with pytest.raises(UsageError, match="version=2019"):
        score_submission(write_text(tmp_path / "g.csv", "Class,Segments\n1,a:0\n"), bad)
    twice = write_text(tmp_path / "t.csv", "VideoId,LabelConfidencePairs\na,1 0.5\na,2 0.5\n")
    with pytest.raises(UsageError, match="'a' is submitted twice"):
        score_submission(twice, pd.DataFrame({"id": ["a"], "labels": [[1]]}))


def test_segment_submission_scores_segment_map(tmp_path):
    ratings = "id,class,start_time,score\nv1,4,0,1\nv1,4,5,0\nv2,4,10,1\nv1,7,0,1\n"
    solution = write_text(tmp_path / "ratings.csv", ratings)
    cache = write_text(tmp_path / "cache.csv", "v1:0,4,1\nv1:5,4,0\nv2:10,4,1\nv1:0,7,1\n")
    sub = write_text(tmp_path / "s.csv", "Class,Segments\n4,v1:5 v2:10 v9:0 v1:0\n7,v1:0\n")
    # class 4: rated list v1:5 (0), v2:10 (1), v1:0 (1) -> (1/2 + 2/3) / 2; class 7: 1.
    want = ((1 / 2 + 2 / 3) / 2 + 1) / 2
    for source in (solution, cache):
        result = score_submission(sub, source, version=2019)
        assert result["map"] == pytest.approx(want)
        assert result["num_classes"] == 2


def test_tie_at_the_cut_keeps_non_labels():
    # "a" ties three classes at 0.5 and only class 3 is a label: the top-2 holds two misses
    # (the tie rule of y8m.metrics), whatever their order in the file.
    labels = pd.DataFrame({"id": ["a", "b"], "labels": [[3], [4]]})
    scores = np.array([[0.5, 0.5, 0.5], [0.9, 0.5, 0.5]])
    for classes in ([[3, 1, 2], [4, 5, 6]], [[1, 3, 2], [5, 6, 4]]):
        result = video_gap(["a", "b"], np.array(classes), scores, labels, top_k=2)
        # "b" keeps 0.9 (class 4 in the first layout, a hit) and one 0.5 miss.
        hit_b = classes[1][0] == 4
        assert result["hits"] == int(hit_b)
        assert result["gap"] == pytest.approx(1 / 2 if hit_b else 0.0)


def test_tied_scores_same_gap_everywhere(tmp_path, rng):
    # Scores rounded to one decimal (written exactly by "%g"): ties at every top-20 cut and
    # across videos. Evaluator over one or several batches, gap() and the scored CSV agree.
    num_videos, num_classes = 80, 40
    ids = random_ids(rng, num_videos)
    labels = (rng.random((num_videos, num_classes)) < 0.12).astype(np.float64)
    labels[:3, :25] = 1  # more labels than the cut
    scores = np.round(rng.random(labels.shape) * 0.7 + 0.3 * labels * rng.random(labels.shape), 1)
    want = metrics.gap(scores, labels, top_k=20)
    for batch in (num_videos, 1, 13, 50):
        evaluator = metrics.Evaluator(num_classes=num_classes, top_k=20)
        for start in range(0, num_videos, batch):
            evaluator.update(scores[start : start + batch], labels[start : start + batch])
        assert evaluator.result()["gap"] == pytest.approx(want, abs=1e-12), batch
    path = str(tmp_path / "tied.csv")
    classes = np.broadcast_to(np.arange(num_classes), scores.shape)
    formats.write_video_submission(path, ids, classes, scores, top_k=num_classes)
    solution = pd.DataFrame({"id": ids, "labels": [np.flatnonzero(row).tolist() for row in labels]})
    result = score_submission(path, solution)
    assert result["gap"] == pytest.approx(want, abs=1e-12)
    index, _ = metrics.top_k_per_row(scores, 20, labels=labels)
    assert result["hits"] == int(np.take_along_axis(labels, index, axis=1).sum())
    # Video order in the file does not matter.
    formats.write_video_submission(path, ids[::-1], classes, scores[::-1], top_k=num_classes)
    assert score_submission(path, solution)["gap"] == pytest.approx(want, abs=1e-12)


def test_segment_topk_ties_do_not_depend_on_batching():
    # Every rated class scores 0.5: each segment keeps the lowest class id (2), and class 2 keeps
    # the lowest segment ids, however the segments are batched and ordered.
    from submissions.segments import SegmentTopK

    ids = [f"v{i}:0" for i in (4, 1, 3, 0, 2, 5)]
    scores = np.full((6, 10), 0.5)
    scores[:, 7] = 0.9  # not rated
    for batches in ([6], [1, 5], [2, 2, 2], [5, 1]):
        topk = SegmentTopK([5, 2, 9], max_per_class=2, top_k=1)
        start = 0
        for size in batches:
            topk.update(ids[start : start + size], scores[start : start + size])
            start += size
        assert topk.result() == {2: ["v0:0", "v1:0"]}, batches
