"""`y8m ensemble --segments`: greedy segment-mAP ensembles of 2019 segment stores."""

import numpy as np
import pandas as pd
import pytest

from ensembles.commands import ensemble
from ensembles.segments import SegmentTable, _Scorer
from submissions.formats import read_segment_submission
from submissions.segments import segment_map
from submissions.validate import validate_submission
from y8m.errors import UsageError
from y8m.segment_store import SegmentSet, write_segment_store

RATED = [1, 4, 9]
NUM_CLASSES = 12


def _segments(prefix, videos=30):
    return [f"{prefix}{v:02d}:{s}" for v in range(videos) for s in (0, 5, 10)]


def _ratings(rng, segments):
    rows = []
    for segment in segments:
        vid, start = segment.split(":")
        for c in RATED:
            if rng.random() < 0.5:
                rows.append((vid, c, int(start), float(rng.random() < 0.4)))
    return pd.DataFrame(rows, columns=["id", "class", "start_time", "score"])


def _truth(ratings):
    keys = ratings["id"] + ":" + ratings["start_time"].astype(str)
    return {(k, c): s for k, c, s in zip(keys, ratings["class"], ratings["score"])}


def _write_store(
    path, name, segments, truth, rng, noise, keep, rated=RATED, num_classes=NUM_CLASSES
):
    per_class = {}
    for c in rated:
        signal = np.array([truth.get((s, c), 0.3) for s in segments])
        scores = signal + noise * rng.normal(size=len(segments))
        best = np.argsort(-scores, kind="stable")[:keep]
        per_class[c] = ([segments[i] for i in best], 1 / (1 + np.exp(-scores[best])))
    metadata = {
        "model_name": name,
        "num_classes": num_classes,
        "rated_classes": rated,
        "segment_max_pred": keep,
        "num_segments": len(segments),
        "segment_set": SegmentSet().update(segments).hexdigest(),
    }
    write_segment_store(str(path), per_class, metadata)


@pytest.fixture
def stores(tmp_path):
    rng = np.random.default_rng(0)
    val_segments, test_segments = _segments("v"), _segments("t")
    ratings = _ratings(rng, val_segments)
    val_truth, test_truth = _truth(ratings), _truth(_ratings(rng, test_segments))
    for split, segments, truth in (
        ("validate", val_segments, val_truth),
        ("test", test_segments, test_truth),
    ):
        (tmp_path / split).mkdir()
        for name, noise in (("a", 0.6), ("b", 0.7), ("c", 0.9)):
            _write_store(
                tmp_path / split / f"{name}.segments.parquet", name, segments, truth, rng, noise, 40
            )
    csv = tmp_path / "ratings.csv"
    ratings.to_csv(csv, index=False)
    return tmp_path, ratings, str(csv)


def test_fast_map_matches_segment_map(stores):
    from ensembles.segments import index_stores

    root, ratings, _ = stores
    val = index_stores(str(root / "validate" / "*.segments.parquet"), "validation")
    table = SegmentTable(val, sorted(val))
    scorer = _Scorer(table, ratings)
    for weights in ([1, 0, 0], [0, 1, 0], [1, 2, 1], [0.5, 0, 0.5]):
        w = np.asarray(weights, float)
        for top in (5, 100):
            expected = segment_map(table.submission(w, top), ratings)["map"]
            assert scorer.map(w, top) == pytest.approx(expected)


def test_greedy_segment_ensemble(stores, tmp_path):
    root, ratings, csv = stores
    out = tmp_path / "sub.csv"
    result = ensemble(
        validation=str(root / "validate" / "*.segments.parquet"),
        test=str(root / "test" / "*.segments.parquet"),
        greedy=5,
        segments=True,
        segment_ratings=csv,
        segment_max_pred=30,
        output_file=str(out),
    )
    assert result["validation_map"] >= max(result["single_maps"].values())
    assert sum(result["weights"].values()) == pytest.approx(1.0)
    report = validate_submission(str(out), version=2019)
    assert report["ok"], report["error"]
    per_class = read_segment_submission(str(out))
    assert set(per_class) == set(RATED) and all(len(v) <= 30 for v in per_class.values())
    assert (tmp_path / "sub.recipe.json").exists() and (tmp_path / "sub.manifest.json").exists()


def test_rank_and_dataframe_ratings(stores, tmp_path):
    root, ratings, _ = stores
    result = ensemble(
        validation=str(root / "validate" / "*.segments.parquet"),
        test=str(root / "test" / "*.segments.parquet"),
        method="rank",
        segments=True,
        segment_ratings=ratings,
        output_file=str(tmp_path / "rank.csv"),
    )
    assert set(result["weights"]) == {"a", "b", "c"} and 0 <= result["validation_map"] <= 1
    assert validate_submission(str(tmp_path / "rank.csv"), version=2019)["ok"]


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(rated=[1, 4]), "rated classes"),
        (dict(num_classes=20), "num_classes"),
        (dict(segments=_segments("v", 29)), "segments scored"),
    ],
)
def test_mismatched_stores(stores, tmp_path, change, match):
    root, ratings, csv = stores
    rng = np.random.default_rng(1)
    segments = change.pop("segments", _segments("v"))
    path = root / "validate" / "d.segments.parquet"
    _write_store(path, "d", segments, {}, rng, 1.0, 40, **change)
    with pytest.raises(UsageError, match=match):
        ensemble(
            validation=str(root / "validate" / "*.segments.parquet"),
            segments=True,
            segment_ratings=csv,
            output_file=str(tmp_path / "x.csv"),
        )
    assert not (tmp_path / "x.csv").exists()


def test_video_store_is_refused(stores, tmp_path):
    plain = tmp_path / "plain.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(plain)
    with pytest.raises(UsageError, match="not a segment store"):
        ensemble(validation=str(plain), segments=True, segment_ratings=stores[2])
