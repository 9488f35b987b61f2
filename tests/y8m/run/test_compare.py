"""`y8m compare A B` end to end on tiny prediction stores written in tmp_path."""

import csv
import re

import numpy as np
import pytest

from y8m.errors import UsageError
from y8m.predictions import PredictionWriter, load_predictions
from y8m.run.compare import CSV_COLUMNS, compare

NUM_CLASSES = 8


def write_store(path, name, ids, dense, labels, order=None, with_labels=True):
    order = np.arange(len(ids)) if order is None else order
    with PredictionWriter(path, model_name=name, split="validate", num_classes=NUM_CLASSES,
                          top_k=5) as writer:  # fmt: skip
        writer.add_batch(ids[order], dense[order], labels[order] if with_labels else None)
    return str(writer.path)


@pytest.fixture()
def pair(tmp_path):
    """A (close to the labels) and B (noisy, rows in another order) on the same 200 videos;
    class 0 is where A is much better."""
    rng = np.random.default_rng(0)
    n = 200
    ids = np.array([f"vid{v:03d}" for v in range(n)])
    labels = (rng.random((n, NUM_CLASSES)) < 0.25).astype(np.float32)
    good = labels + 0.4 * rng.random(labels.shape)
    bad = labels + 1.2 * rng.random(labels.shape)
    bad[:, 0] = rng.random(n)  # B knows nothing about class 0
    a = write_store(tmp_path / "a", "good", ids, good, labels)
    b = write_store(tmp_path / "b", "bad", ids, bad, labels, order=rng.permutation(n))
    vocabulary = tmp_path / "vocabulary.csv"
    rows = [f"{c},Name{c},Vertical" for c in range(NUM_CLASSES)]
    vocabulary.write_text("Index,Name,Vertical1\n" + "\n".join(rows) + "\n")
    return a, b, str(vocabulary), (ids, good, bad, labels)


def test_compare_prints_the_difference_its_interval_and_classes(tmp_path, pair, capsys):
    a, b, vocabulary, _ = pair
    output = tmp_path / "per_class.csv"
    result = compare(a, b, bootstrap=300, vocabulary=vocabulary, output_file=str(output),
                     progress=False)  # fmt: skip
    gap_a, gap_b = load_predictions(a).gap(20), load_predictions(b).gap(20)
    assert result["gap_a"] == pytest.approx(gap_a, abs=1e-12)
    assert result["gap_b"] == pytest.approx(gap_b, abs=1e-12)
    assert result["difference"] == pytest.approx(gap_a - gap_b)
    assert result["low"] <= result["difference"] <= result["high"]
    assert result["significant"] and result["better"] == "A" and result["low"] > 0
    assert result["num_videos"] == 200 and result["bootstrap"] == 300
    assert (result["model_a"], result["model_b"]) == ("good", "bad")
    best = result["classes_a_better"][0]
    assert best["class"] == 0 and best["name"] == "Name0" and best["low"] > 0
    printed = capsys.readouterr().out
    assert re.search(r"GAP\(A\) - GAP\(B\) = \+0\.\d{5}, 95% interval \[\+", printed)
    assert "significant: A is better" in printed and "Name0" in printed
    with open(output, newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == NUM_CLASSES
    assert rows[0]["name"] == "Name0" and rows[0]["significant"] == "True"
    assert float(rows[0]["difference"]) == pytest.approx(best["difference"], rel=1e-5)


def test_same_seed_same_interval_and_a_store_against_itself(pair):
    a, b, _, _ = pair
    first = compare(a, b, bootstrap=100, seed=3, progress=False)
    again = compare(a, b, bootstrap=100, seed=3, progress=False)
    other = compare(a, b, bootstrap=100, seed=4, progress=False)
    assert (first["low"], first["high"]) == (again["low"], again["high"])
    assert (first["low"], first["high"]) != (other["low"], other["high"])
    same = compare(a, a, bootstrap=50, progress=False)
    assert same["difference"] == same["low"] == same["high"] == 0.0
    assert not same["significant"] and same["better"] is None
    assert same["classes_a_better"] == same["classes_b_better"] == []


def test_different_videos_or_missing_labels_are_one_line_errors(tmp_path, pair):
    a, _, _, (ids, _, bad, labels) = pair
    fewer = write_store(tmp_path / "fewer", "bad", ids[:190], bad[:190], labels[:190])
    message = (
        rf"^{re.escape(a)} \(200 videos\) and {re.escape(fewer)} \(190 videos\) cover "
        r"different videos \(10 only in the first, 0 only in the second; e\.g\. 'vid19\d' only "
        r"in the first\): predict both on the same records$"
    )
    with pytest.raises(UsageError, match=message):
        compare(a, fewer, bootstrap=10, progress=False)
    unlabelled = write_store(tmp_path / "nolabels", "bad", ids, bad, labels, with_labels=False)
    with pytest.raises(UsageError, match=f"^{re.escape(unlabelled)} has no labels"):
        compare(a, unlabelled, bootstrap=10, progress=False)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"bootstrap": 0}, "--bootstrap must be at least 1"),
        ({"confidence": 1.5}, "--confidence must be less than 1"),
        ({"top_k": "x"}, "--top_k must be an integer"),
        ({"seed": -1}, "--seed must be at least 0"),
    ],
)
def test_flags_are_checked_before_reading(tmp_path, flags, message):
    missing = str(tmp_path / "missing.parquet")
    with pytest.raises(UsageError, match="^" + re.escape(message)):
        compare(missing, missing, **flags)


def test_through_the_cli(pair, capsys):
    from y8m.cli import main

    a, b, _, _ = pair
    main(["compare", a, b, "--bootstrap=40", "--top_k=3"])
    out = capsys.readouterr().out
    assert "GAP(A) - GAP(B)" in out and "40 paired resamples of 200 videos" in out
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", a])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: compare needs two prediction stores")
