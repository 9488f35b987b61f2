import gzip

import numpy as np
import pytest

from submissions import formats
from submissions.commands import Commands
from tests.submissions.helpers import write_text
from y8m.data import read_labels
from y8m.errors import UsageError


def test_validate_prints_ok_and_returns_report(tmp_path, capsys):
    path = write_text(tmp_path / "s.csv", "VideoId,LabelConfidencePairs\na,1 0.5 2 0.25\nb,3 1\n")
    report = Commands().validate(path)
    assert report["ok"] and report["rows"] == 2
    assert capsys.readouterr().out.startswith(f"OK: {path} is a valid 2018 submission: 2 videos")


def test_validate_raises_with_line_number(tmp_path):
    path = write_text(tmp_path / "s.csv", "VideoId,LabelConfidencePairs\na,1 0.5\nb,1 0.5 x\n")
    with pytest.raises(UsageError, match=r"line 3: "):
        Commands().validate(path)


def test_validate_segments(tmp_path, capsys):
    path = write_text(tmp_path / "s.csv", "Class,Segments\n5,a:0 b:10\n")
    assert Commands().validate(path, version=2019)["segments"] == 2
    assert "1 classes, 2 segments" in capsys.readouterr().out


def test_score_prints_gap(tmp_path, capsys):
    sub = write_text(tmp_path / "s.csv", "VideoId,LabelConfidencePairs\na,1 0.9 2 0.5\nb,3 0.7\n")
    truth = write_text(tmp_path / "t.csv", "VideoId,Labels\na,2\nb,3\nc,4\n")
    result = Commands().score(sub, solution=truth)
    # ranking 0.9 miss, 0.7 hit (1/2), 0.5 hit (2/3); 3 positives
    assert result["gap"] == pytest.approx((1 / 2 + 2 / 3) / 3)
    assert result["missing"] == 1
    assert capsys.readouterr().out.startswith(f"GAP@20 {result['gap']:.6f} on 3 videos")


def test_with_tfrecords_from_synth(synth_dir, tmp_path, capsys):
    """ids_from and solution as TFRecords read by the real readers: the CLI takes the globs."""
    from y8m.cli.commands import Submission

    pattern = str(synth_dir / "frame" / "validate*.tfrecord")
    truth = read_labels(pattern)
    num_videos = len(truth)
    classes = np.full((num_videos, 3), -1)
    scores = np.zeros((num_videos, 3))
    for i, labels in enumerate(truth["labels"]):
        classes[i, 0] = labels[0]
        scores[i, 0] = 1 - i / (2 * num_videos)
    path = str(tmp_path / "s.csv.gz")
    formats.write_video_submission(path, truth["id"].tolist(), classes, scores)

    assert Commands().validate(path, ids_from=truth)["missing_ids"] == 0
    result = Commands().score(path, solution=truth)
    positives = sum(len(v) for v in truth["labels"])
    assert result["positives"] == positives
    assert result["gap"] == pytest.approx(num_videos / positives)

    capsys.readouterr()
    Submission().validate(path, ids_from=pattern)
    Submission().score(path, solution=pattern)
    validated, scored = capsys.readouterr().out.splitlines()
    assert validated.endswith(f"ids match the {num_videos} expected")
    assert scored.startswith(f"GAP@20 {result['gap']:.6f} on {num_videos} videos (0 missing")
    assert scored.endswith(f"{num_videos} of {positives} labels found)")


@pytest.mark.parametrize(
    "row, problem",
    [("b,3 inf", "score inf is outside [0, 1]"), ("b,3 1.5", "score 1.5 is outside [0, 1]")],
)
def test_score_refuses_what_validate_rejects(tmp_path, row, problem):
    sub = write_text(tmp_path / "s.csv", f"VideoId,LabelConfidencePairs\na,1 0.9\n{row}\n")
    truth = write_text(tmp_path / "t.csv", "VideoId,Labels\na,2\nb,3\n")
    with pytest.raises(UsageError) as validate_error:
        Commands().validate(sub)
    with pytest.raises(UsageError) as score_error:
        Commands().score(sub, solution=truth)
    assert str(score_error.value) == str(validate_error.value)
    assert str(score_error.value) == f"invalid submission {sub}: line 3: {problem}"


def _cli_error(capsys, argv) -> str:
    from y8m.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: "), captured.err
    return captured.err


def test_unreadable_files_are_one_error_line(tmp_path, capsys):
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(b"VideoId,LabelConfidencePairs\ncaf\xe9,1 0.5\n")
    assert "not UTF-8 text (byte 0xe9)" in _cli_error(
        capsys, ["submission", "validate", str(latin1)]
    )
    whole = gzip.compress(b"VideoId,LabelConfidencePairs\n" + b"a,1 0.5\n" * 2000)
    truncated = tmp_path / "cut.csv.gz"
    truncated.write_bytes(whole[: len(whole) // 2])
    for argv in (["validate", str(truncated)], ["score", str(truncated), "--solution=t.csv"]):
        assert "gzip stream is truncated" in _cli_error(capsys, ["submission", *argv])
    corrupt = tmp_path / "bad.csv.gz"
    corrupt.write_bytes(whole[:20] + b"\0" * 40 + whole[60:])
    assert f"cannot read {corrupt}" in _cli_error(capsys, ["submission", "validate", str(corrupt)])


def test_missing_arguments_and_bad_flags_are_one_error_line(tmp_path, capsys):
    sub = write_text(tmp_path / "s.csv", "VideoId,LabelConfidencePairs\na,1 0.5\n")
    assert "pass the submission file" in _cli_error(capsys, ["submission", "validate"])
    assert "pass the submission file" in _cli_error(capsys, ["submission", "score"])
    assert "pass --solution" in _cli_error(capsys, ["submission", "score", sub])
    err = _cli_error(capsys, ["submission", "validate", sub, "--version=abc"])
    assert err.startswith("error: --version must be an integer, got 'abc'")
    err = _cli_error(capsys, ["submission", "score", sub, "--solution=t.csv", "--version=2016"])
    assert err.startswith("error: --version must be one of 2017, 2018, 2019")
