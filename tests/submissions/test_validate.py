import gzip

import pandas as pd
import pytest

import y8m.data
from submissions.validate import raise_for_report, validate_submission
from tests.submissions.helpers import write_text
from y8m.errors import UsageError

VIDEO_HEADER = "VideoId,LabelConfidencePairs\n"
SEGMENT_HEADER = "Class,Segments\n"
GOOD_VIDEO_ROWS = ["aaaa,1 0.9 2 0.5", "bbbb,3 1 4 0", "cccc,3861 0.25"]


def _video(*rows: str) -> str:
    return VIDEO_HEADER + "".join(r + "\n" for r in rows)


def _check(tmp_path, text, **kwargs) -> dict:
    return validate_submission(write_text(tmp_path / "sub.csv", text), **kwargs)


def test_valid_video_file_counts(tmp_path):
    report = _check(tmp_path, _video(*GOOD_VIDEO_ROWS))
    assert report["ok"] and report["error"] is None
    assert (report["rows"], report["pairs"], report["min_pairs"], report["max_pairs"]) == (
        3,
        5,
        1,
        2,
    )
    assert report["format"] == "video" and report["num_classes"] == 3862


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        ("VideoId,Labels\naaaa,1 0.5\n", 1, "header is 'VideoId,Labels'"),
        ("", 1, "empty"),
        (_video("aaaa,1 0.5", "bbbb 1 0.5"), 3, "expected 'video_id,label score"),
        (_video("aaaa,1 0.5", "bbbb,1 0.5 x 0.2"), 3, "cannot read 'x'"),
        (_video("aaaa,1 0.5", "bbbb,1 0.5 2"), 3, "3 fields"),
        (_video("aaaa,1 0.5", "bbbb,1.5 0.5"), 3, "label 1.5 is not an integer"),
        (_video("aaaa,1 0.5", "bbbb,1 0.5", "aaaa,2 0.5"), 4, "'aaaa' repeats line 2"),
        (_video("aaaa,1 0.5", "bbbb,3862 0.5"), 3, "label 3862 is outside [0, 3862)"),
        (_video("aaaa,1 0.5", "bbbb,-1 0.5"), 3, "label -1 is outside"),
        (_video("aaaa,1 0.5", "bbbb,2 0.5 1 1.5"), 3, "score 1.5 is outside [0, 1]"),
        (_video("aaaa,1 0.5", "bbbb,2 -0.1"), 3, "score -0.1 is outside"),
        (_video("aaaa,1 0.5", "bbbb,2 nan"), 3, "score nan is outside"),
        (_video("aaaa,1 0.5", "bbbb,2 0.5 7 0.1 2 0.2"), 3, "label 2 appears twice"),
        (_video("aaaa,1 0.5", "bbbb,"), 3, "no 'label score' pairs"),
        (_video("aaaa,1 0.5", "bbbb," + " ".join(f"{c} 0.5" for c in range(21))), 3, "21 pairs"),
        (_video("aaaa,1 0.5", ",1 0.5"), 3, "video id is empty"),
    ],
)
def test_video_errors_have_line_numbers(tmp_path, text, line, fragment):
    report = _check(tmp_path, text)
    assert not report["ok"]
    assert report["line"] == line
    assert report["error"].startswith(f"line {line}: ")
    assert fragment in report["error"]


def test_first_problem_wins_across_chunks_and_blank_lines(tmp_path):
    rows = [f"v{i:03d},{i % 50} 0.5" for i in range(10)]
    rows[7] = "v007,2 0.5 2 0.4"  # repeated label
    rows[8] = "v008,9999 0.5"  # later and out of range
    text = VIDEO_HEADER + "\n".join(rows[:4]) + "\n\n" + "\n".join(rows[4:]) + "\n"
    report = _check(tmp_path, text, chunk_rows=3)
    assert report["line"] == 10 and "label 2 appears twice" in report["error"]


def test_label_range_follows_the_version(tmp_path):
    text = _video("aaaa,4000 0.5")
    assert not _check(tmp_path, text, version=2018)["ok"]
    assert _check(tmp_path, text, version=2017)["ok"]
    assert not _check(tmp_path, text, version=2017, num_classes=100)["ok"]


def test_gzip_file(tmp_path):
    path = tmp_path / "sub.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write(_video(*GOOD_VIDEO_ROWS))
    assert validate_submission(str(path))["rows"] == 3


@pytest.mark.parametrize("name", ["ids.txt", "ids.csv"])
def test_ids_from_file_reports_missing_and_extra(tmp_path, name):
    header = "id\n" if name.endswith(".csv") else ""
    ids = write_text(tmp_path / name, header + "aaaa\nbbbb\ncccc\ndddd\neeee\n")
    report = _check(tmp_path, _video(*GOOD_VIDEO_ROWS), ids_from=ids)
    assert not report["ok"] and report["error"].startswith("2 of the 5 expected")
    assert (report["missing_ids"], report["extra_ids"]) == (2, 0)

    report = _check(tmp_path, _video("aaaa,1 0.5", "zzzz,1 0.5", "yyyy,1 0.5"), ids_from=ids)
    assert report["line"] == 3
    assert "'zzzz' is not in the test set (2 such ids, 4 expected ids missing)" in report["error"]
    assert (report["missing_ids"], report["extra_ids"]) == (4, 2)

    exact = _video(*(f"{v},1 0.5" for v in ["eeee", "aaaa", "cccc", "bbbb", "dddd"]))
    report = _check(tmp_path, exact, ids_from=ids)
    assert report["ok"] and report["expected_ids"] == 5 and report["missing_ids"] == 0


def test_extra_id_before_a_format_error_is_the_first_problem(tmp_path):
    ids = write_text(tmp_path / "ids.txt", "aaaa\nbbbb\n")
    report = _check(tmp_path, _video("zzzz,1 0.5", "aaaa,1 7"), ids_from=ids)
    assert report["line"] == 2 and "'zzzz' is not in the test set" in report["error"]


def test_ids_from_tfrecords_uses_read_labels(tmp_path, monkeypatch, capsys):
    """The CLI reads a TFRecord glob (the submissions package takes the DataFrame)."""
    from y8m.cli.commands import Submission

    calls = []

    def fake_read_labels(pattern, version=None):
        calls.append((pattern, version))
        return pd.DataFrame({"id": ["aaaa", "bbbb", "cccc"], "labels": [[1], [2], [3]]})

    monkeypatch.setattr(y8m.data, "read_labels", fake_read_labels, raising=False)
    path = write_text(tmp_path / "sub.csv", _video(*GOOD_VIDEO_ROWS))
    Submission().validate(path, ids_from="test*.tfrecord")  # raises unless the report is ok
    assert calls == [("test*.tfrecord", 2018)]
    out = capsys.readouterr().out
    assert out.startswith(f"OK: {path} is a valid 2018 submission") and "3 expected" in out


def test_ids_from_dataframe_and_glob(tmp_path):
    ids = pd.DataFrame({"id": ["aaaa", "bbbb", "cccc"], "labels": [[1], [2], [3]]})
    report = _check(tmp_path, _video(*GOOD_VIDEO_ROWS), ids_from=ids)
    assert report["ok"] and report["expected_ids"] == 3
    with pytest.raises(UsageError, match=r"read TFRecords first with y8m.data.read_labels"):
        _check(tmp_path, _video(*GOOD_VIDEO_ROWS), ids_from="test*.tfrecord")


def test_raise_for_report(tmp_path):
    report = _check(tmp_path, _video("aaaa,1 0.5", "bbbb,1 2"))
    with pytest.raises(UsageError, match=r"sub.csv: line 3: score 2.0 is outside"):
        raise_for_report(report)


GOOD_SEGMENTS = ["3,aaaa:0 bbbb:5 aaaa:295", "10,cccc:100"]


def _segments(*rows: str) -> str:
    return SEGMENT_HEADER + "".join(r + "\n" for r in rows)


def test_valid_segment_file(tmp_path):
    report = _check(tmp_path, _segments(*GOOD_SEGMENTS), version=2019)
    assert report["ok"] and report["format"] == "segment"
    assert (report["rows"], report["segments"], report["max_segments"]) == (2, 4, 3)


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        (_video("aaaa,1 0.5"), 1, "expected 'Class,Segments'"),
        (_segments("3,aaaa:0", "4,aaaa-5"), 3, "segment id 'aaaa-5' is not 'videoid:start'"),
        (_segments("3,aaaa:0", "4,aaaa:0 bbbb:x"), 3, "segment id 'bbbb:x'"),
        (_segments("3,aaaa:0", "4,aaaa:7"), 3, "starts at 7, not a multiple of 5"),
        (_segments("3,a:b:0", "4,a:b:5 a:b:12"), 3, "segment 'a:b:12' starts at 12"),
        (_segments("3,aaaa:0", "3862,aaaa:0"), 3, "class 3862 is outside [0, 3862)"),
        (_segments("3,aaaa:0", "x,aaaa:0"), 3, "class id 'x' is not an integer"),
        (_segments("3,aaaa:0", "3,bbbb:0"), 3, "class 3 already has a row on line 2"),
        (_segments("3,aaaa:0", "4,bbbb:0 aaaa:0 bbbb:0"), 3, "'bbbb:0' appears twice"),
        (_segments("3,aaaa:0", "4,"), 3, "class 4 has no segments"),
    ],
)
def test_segment_errors_have_line_numbers(tmp_path, text, line, fragment):
    report = _check(tmp_path, text, version=2019)
    assert report["line"] == line and report["error"].startswith(f"line {line}: ")
    assert fragment in report["error"]


def test_segment_videos_must_be_test_videos(tmp_path):
    ids = write_text(tmp_path / "ids.txt", "aaaa\nbbbb\ncccc\ndddd\n")
    assert _check(tmp_path, _segments(*GOOD_SEGMENTS), version=2019, ids_from=ids)["ok"]
    report = _check(tmp_path, _segments("3,aaaa:0", "4,bbbb:0 zzzz:5"), version=2019, ids_from=ids)
    assert report["line"] == 3 and "'zzzz' is not in the test set (1 such ids" in report["error"]
