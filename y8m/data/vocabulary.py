"""vocabulary.csv (the 2018 release's class list): class index -> name and vertical."""

from __future__ import annotations

import csv
import os

from y8m.errors import UsageError


def read_vocabulary(path: str) -> dict[int, dict[str, str]]:
    """`{index: {"name": Name, "vertical": Vertical1, "train_videos": TrainVideoCount}}` from a
    vocabulary.csv (`train_videos` is None where the file has no TrainVideoCount column).

    Raises:
        UsageError: a missing file, or one without the `Index` and `Name` columns.
    """
    if not os.path.isfile(path):
        raise UsageError(f"no vocabulary file {path!r}: the 2018 release ships vocabulary.csv")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"Index", "Name"} <= set(reader.fieldnames):
            raise UsageError(
                f"{path} has no Index and Name columns (found {reader.fieldnames}): pass the "
                "release's vocabulary.csv"
            )
        table = {}
        for row in reader:
            try:
                index = int(row["Index"])
            except (TypeError, ValueError):
                raise UsageError(f"{path}: Index {row['Index']!r} is not an integer") from None
            table[index] = {
                "name": row["Name"] or "",
                "vertical": row.get("Vertical1") or "",
                "train_videos": _count(row.get("TrainVideoCount"), path),
            }
    return table


def _count(value, path: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(float(value))
    except ValueError:
        raise UsageError(f"{path}: TrainVideoCount {value!r} is not a number") from None
