"""`y8m submission ...` subcommands: validate and score Kaggle submission files."""

from __future__ import annotations

import os

import pandas as pd

from submissions.score import score_submission
from submissions.validate import raise_for_report, validate_submission
from y8m.data import specs
from y8m.errors import UsageError, choice, integer

NO_SOLUTION = "pass --solution=GLOB_OR_CSV: the true labels (TFRecords or a VideoId,Labels CSV)"


class Commands:
    """Check and score Kaggle submission files (2017/2018 videos, 2019 segments)."""

    def validate(
        self,
        file: str,
        version: int = specs.DEFAULT_VERSION,
        ids_from: str | pd.DataFrame | None = None,
    ) -> dict:
        """Checks that a submission file is one Kaggle accepts; the first problem has its line.

        Args:
            file: the submission CSV (plain or .gz).
            version: 2017 or 2018 (VideoId,LabelConfidencePairs) or 2019 (Class,Segments).
            ids_from: expected video ids: a .csv/.txt of ids, or a DataFrame with an `id` column
                (`y8m submission validate` reads a TFRecord glob of the test set into one).
        """
        report = check_submission(file, version, ids_from)
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
        self,
        file: str,
        solution: str | pd.DataFrame | None = None,
        version: int = specs.DEFAULT_VERSION,
        *,
        validated: bool = False,
    ) -> dict:
        """Scores a submission against true labels: GAP@20 (2017/2018) or segment mAP (2019).

        The file is validated first, as `validate` does: a score above 1, a repeated id or a
        label out of range would otherwise inflate the score; the first problem is the error.

        Args:
            file: the submission CSV (plain or .gz).
            solution: true labels: a CSV (VideoId,Labels; 2019: ratings) or a DataFrame
                (`y8m submission score` reads a TFRecord glob into one).
            version: 2017, 2018 or 2019.
            validated: the caller has already run `check_submission` on the file.
        """
        check_file(file)
        if solution is None:
            raise UsageError(NO_SOLUTION)
        if not validated:
            check_submission(file, version)
        result = score_submission(str(file), as_source(solution), version=check_version(version))
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


def check_version(version) -> int:
    """--version as one of the releases' years; a one-line UsageError naming the flag."""
    return choice("version", integer("version", version), list(specs.RELEASES))


def check_file(file) -> str:
    """The submission path given as the first argument; a one-line UsageError when there is none."""
    if file is None or (isinstance(file, str) and not file.strip()):
        raise UsageError("pass the submission file, FILE.csv or FILE.csv.gz, as the first argument")
    if isinstance(file, bool) or not isinstance(file, (str, os.PathLike)):
        raise UsageError(f"the submission must be one file path, got {file!r}")
    return os.fspath(file)


def check_submission(file, version=specs.DEFAULT_VERSION, ids_from=None) -> dict:
    """The validation report of FILE; a one-line UsageError with its first problem.

    Raises:
        UsageError: no file given, a bad --version, an unreadable or invalid file.
    """
    file = check_file(file)
    version = check_version(version)
    report = validate_submission(file, version=version, ids_from=as_source(ids_from))
    raise_for_report(report)
    return report


def as_source(value):
    """A flag's value as a path or glob: fire turns `--flag=a,b` into a tuple, and globs take
    comma-separated patterns as one string. DataFrames and None pass through."""
    if value is None or isinstance(value, pd.DataFrame):
        return value
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)
