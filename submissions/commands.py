"""`y8m submission ...` subcommands: validate and score Kaggle submission files."""

from __future__ import annotations

from submissions.score import score_submission
from submissions.validate import raise_for_report, validate_submission
from y8m.data import specs
from y8m.errors import UsageError


class Commands:
    """Check and score Kaggle submission files (2017/2018 videos, 2019 segments)."""

    def validate(
        self, file: str, version: int = specs.DEFAULT_VERSION, ids_from: str | None = None
    ) -> dict:
        """Checks that a submission file is one Kaggle accepts; the first problem has its line.

        Args:
            file: the submission CSV (plain or .gz).
            version: 2017 or 2018 (VideoId,LabelConfidencePairs) or 2019 (Class,Segments).
            ids_from: expected video ids: a TFRecord glob of the test set or a .csv/.txt of ids.
        """
        report = validate_submission(str(file), version=version, ids_from=_pattern(ids_from))
        raise_for_report(report)
        if report["format"] == "video":
            summary = (
                f"{report['rows']} videos, {report['pairs']} pairs "
                f"({report['min_pairs']}-{report['max_pairs']} per video)"
            )
        else:
            summary = (
                f"{report['rows']} classes, {report['segments']} segments "
                f"(at most {report['max_segments']} per class)"
            )
        if ids_from is not None:
            summary += f", ids match the {report['expected_ids']} expected"
        print(f"OK: {file} is a valid {report['version']} submission: {summary}")
        return report

    def score(
        self, file: str, solution: str | None = None, version: int = specs.DEFAULT_VERSION
    ) -> dict:
        """Scores a submission against true labels: GAP@20 (2017/2018) or segment mAP (2019).

        Args:
            file: the submission CSV (plain or .gz).
            solution: true labels: a TFRecord glob, or a CSV (VideoId,Labels; 2019: ratings).
            version: 2017, 2018 or 2019.
        """
        if solution is None:
            raise UsageError(
                "pass --solution=GLOB_OR_CSV: the true labels (TFRecords or a VideoId,Labels CSV)"
            )
        result = score_submission(str(file), _pattern(solution), version=version)
        if result["metric"] == "gap":
            print(
                f"GAP@{specs.SUBMISSION_TOP_K} {result['gap']:.6f} on {result['videos']} videos "
                f"({result['missing']} missing from the submission, {result['extra']} not in the "
                f"solution, {result['hits']} of {result['positives']} labels found)"
            )
            return result
        result = {k: v for k, v in result.items() if k != "aps"}
        result["skipped_classes"] = len(result["skipped_classes"])
        print(
            f"segment mAP {result['map']:.6f} over {result['num_classes']} classes "
            f"({result['num_positives']} positive of {result['num_rated']} rated segments; "
            f"{result['skipped_classes']} submitted classes without positives)"
        )
        return result


def _pattern(value):
    """Fire turns `--flag=a,b` into a tuple; globs take comma-separated patterns as one string."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return None if value is None else str(value)
