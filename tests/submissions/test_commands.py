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
