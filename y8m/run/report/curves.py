"""Training curves of run directories (their history.csv), for `y8m report --runs`."""

from __future__ import annotations

import glob
import os

import pandas as pd

from y8m.errors import UsageError
from y8m.run import rundir


def run_directories(pattern: str) -> list[str]:
    """Run directories matching a glob (or comma-separated globs) that hold a history.csv.

    Raises:
        UsageError: nothing matches, or a match has no history.csv (not a training run).
    """
    found = []
    for part in str(pattern).split(","):
        part = os.path.expanduser(part.strip())
        found.extend(p for p in glob.glob(part) if os.path.isdir(p))
    found = sorted(set(found))
    if not found:
        raise UsageError(f"no run directories match {pattern!r}: pass --runs='runs/*'")
    missing = [d for d in found if not os.path.exists(rundir.path(d, rundir.HISTORY_FILE))]
    if missing:
        raise UsageError(
            f"{missing[0]} has no {rundir.HISTORY_FILE}: is it a `y8m train` directory?"
        )
    return found


def read_curves(directories: list[str]) -> pd.DataFrame:
    """All runs' history rows: `run` (the directory's name) and the history.csv columns."""
    frames = []
    names = _names(directories)
    for name, directory in zip(names, directories):
        try:
            history = pd.read_csv(rundir.path(directory, rundir.HISTORY_FILE))
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            raise UsageError(f"{directory}/{rundir.HISTORY_FILE} is unreadable ({err})") from None
        for column in rundir.HISTORY_FIELDS:
            if column not in history.columns:
                history[column] = float("nan")
        history.insert(0, "run", name)
        frames.append(history[["run", *rundir.HISTORY_FIELDS]])
    return pd.concat(frames, ignore_index=True)


def final_values(curves: pd.DataFrame) -> pd.DataFrame:
    """Per run: last step, last loss, last learning rate, best and last validation GAP."""
    rows = []
    for run, part in curves.groupby("run", sort=True):
        loss = part.dropna(subset=["loss"])
        gap = part.dropna(subset=["validation_gap"])
        rows.append(
            {
                "run": run,
                "steps": int(part["step"].max()),
                "final_loss": float(loss["loss"].iloc[-1]) if len(loss) else float("nan"),
                "final_learning_rate": float(loss["learning_rate"].iloc[-1])
                if len(loss)
                else float("nan"),
                "best_validation_gap": float(gap["validation_gap"].max())
                if len(gap)
                else float("nan"),
                "last_validation_gap": float(gap["validation_gap"].iloc[-1])
                if len(gap)
                else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def _names(directories: list[str]) -> list[str]:
    """Each run's directory name, with its parent where two runs share a name."""
    base = [os.path.basename(os.path.normpath(d)) for d in directories]
    return [
        b if base.count(b) == 1 else os.path.join(os.path.basename(os.path.dirname(d)), b)
        for b, d in zip(base, (os.path.normpath(d) for d in directories))
    ]
