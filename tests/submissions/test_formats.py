import gzip
import re

import numpy as np
import pytest

from submissions import formats
from tests.submissions.helpers import distinct_scores, random_ids, write_text
from y8m.data import specs
from y8m.errors import UsageError


def _expected_top(classes, scores, top_k):
    order = np.argsort(-scores, axis=1)[:, :top_k]
    return np.take_along_axis(classes, order, 1), np.take_along_axis(scores, order, 1)


@pytest.mark.parametrize("version", [2017, 2018])
@pytest.mark.parametrize("name", ["sub.csv", "sub.csv.gz"])
def test_video_round_trip(tmp_path, rng, version, name):
    ids = random_ids(rng, 40)
    classes = np.stack([rng.permutation(100)[:30] for _ in ids])
    scores = distinct_scores(rng, classes.shape)
    path = str(tmp_path / name)

    assert formats.write_video_submission(path, ids, classes, scores, version=version) == 40
    got_ids, got_classes, got_scores = formats.read_video_submission(path)

    want_classes, want_scores = _expected_top(classes, scores, 20)
    assert got_ids.tolist() == ids
    assert got_classes.shape == (40, 20) and got_classes.dtype == np.int32
    np.testing.assert_array_equal(got_classes, want_classes)
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-6)
    with open(path, "rb") as f:
        assert (f.read(2) == b"\x1f\x8b") == name.endswith(".gz")


def test_video_rows_score_text_follows_the_official_format():
    ids, classes, scores = ["ab"], np.array([[5, 7]]), np.array([[1e-5, 0.25]])
    assert list(formats.video_rows(ids, classes, scores, version=2017)) == [
        "ab,7 0.250000 5 0.000010"
    ]
    assert list(formats.video_rows(ids, classes, scores, version=2018)) == ["ab,7 0.25 5 1e-05"]


def test_padding_is_skipped_on_write_and_padded_on_read(tmp_path):
    classes = np.array([[3, -1, 9], [-1, -1, 4]])
    scores = np.array([[0.5, 0.9, 0.7], [0.0, 0.0, 0.125]])
    path = str(tmp_path / "s.csv")
    formats.write_video_submission(path, ["v1", "v2"], classes, scores)
    assert (tmp_path / "s.csv").read_text().splitlines() == [
        "VideoId,LabelConfidencePairs",
        "v1,9 0.7 3 0.5",
        "v2,4 0.125",
    ]
    _, got_classes, got_scores = formats.read_video_submission(path, top_k=3)
    np.testing.assert_array_equal(got_classes, [[9, 3, -1], [4, -1, -1]])
    np.testing.assert_allclose(got_scores, [[0.7, 0.5, 0], [0.125, 0, 0]])
    _, wide, _ = formats.read_video_submission(path, top_k=None)
    assert wide.shape == (2, 2)


def test_reader_sorts_rows_and_accepts_willow_header(tmp_path):
    path = write_text(tmp_path / "w.csv", "VideoID,LabelConfidencePairs\r\nv,1 0.1 2 0.9 3 0.5\r\n")
    ids, classes, scores = formats.read_video_submission(path, top_k=2)
    assert ids.tolist() == ["v"]
    np.testing.assert_array_equal(classes, [[2, 3]])
    np.testing.assert_allclose(scores, [[0.9, 0.5]])


def test_reader_reports_line_of_unparsable_row(tmp_path):
    text = "VideoId,LabelConfidencePairs\na,1 0.5\n\nb,1:0.5\n"
    with pytest.raises(UsageError, match=r"^line 4: .*'1:0.5'"):
        formats.read_video_submission(write_text(tmp_path / "bad.csv", text))


def test_gzip_output_is_deterministic(tmp_path):
    args = (["a", "b"], np.array([[1, 2], [3, 4]]), np.array([[0.1, 0.2], [0.3, 0.4]]))
    formats.write_video_submission(str(tmp_path / "one.csv.gz"), *args)
    formats.write_video_submission(str(tmp_path / "two"), *args, gzip=True)
    assert (tmp_path / "one.csv.gz").read_bytes() == (tmp_path / "two").read_bytes()
    with gzip.open(tmp_path / "two", "rt") as f:
        assert f.readline().strip() == ",".join(specs.VIDEO_SUBMISSION_HEADER)


def test_failed_write_leaves_old_file(tmp_path):
    path = write_text(tmp_path / "s.csv", "old")

    def rows():
        yield "a,1 0.5"
        raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError):
        formats.write_rows(path, specs.VIDEO_SUBMISSION_HEADER, rows())
    assert (tmp_path / "s.csv").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["s.csv"]


@pytest.mark.parametrize("name", ["seg.csv", "seg.csv.gz"])
def test_segment_round_trip(tmp_path, name):
    per_class = {17: ["ab:0", "cd:15", "ab:295"], 3: ["ef:5"], 9: []}
    path = str(tmp_path / name)
    assert formats.write_segment_submission(path, per_class) == 2
    got = formats.read_segment_submission(path)
    assert got == {3: ["ef:5"], 17: ["ab:0", "cd:15", "ab:295"]}
    assert list(got) == [3, 17]


def test_segment_rows_cap_and_text():
    rows = list(formats.segment_rows({2: ["a:0", "b:5", "c:10"]}, max_per_class=2))
    assert rows == ["2,a:0 b:5"]


def test_segment_reader_rejects_repeated_class(tmp_path):
    path = write_text(tmp_path / "s.csv", "Class,Segments\n1,a:0\n2,b:0\n1,c:0\n")
    with pytest.raises(UsageError, match=r"^line 4: class 1 already has a row on line 2"):
        formats.read_segment_submission(path)


def test_video_rows_checks_shapes():
    with pytest.raises(ValueError, match="classes"):
        list(formats.video_rows(["a"], np.zeros((2, 3)), np.zeros((2, 3))))


@pytest.mark.parametrize("bad", ["a,b", 'a"b', "a\nb", "a\rb", "a b", ""])
def test_writers_refuse_ids_that_break_the_csv(tmp_path, bad):
    path = tmp_path / "s.csv"
    path.write_text("old\n")
    classes, scores = np.array([[1], [2]]), np.array([[0.5], [0.25]])
    with pytest.raises(UsageError, match=f"^video id {re.escape(repr(bad))} cannot be written"):
        formats.write_video_submission(str(path), ["ok", bad], classes, scores)
    if bad:  # an empty video id in a segment id is test_writers_refuse_malformed_segment_ids
        segment = repr(bad + ":5")
        with pytest.raises(UsageError, match=f"^segment id {re.escape(segment)} cannot"):
            formats.write_segment_submission(str(path), {3: ["ok:0", bad + ":5"]})
    assert path.read_text() == "old\n"  # nothing half written


def test_writers_refuse_malformed_segment_ids(tmp_path):
    path = tmp_path / "s.csv"
    for bad in (":5", "vid:", "vid:x"):
        with pytest.raises(UsageError, match=f"^segment id {re.escape(repr(bad))} of class 3"):
            formats.write_segment_submission(str(path), {3: ["ok:0", bad]})
    assert not path.exists()
