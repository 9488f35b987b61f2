"""Atomic file output and glob expansion shared by every command that reads or writes files."""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator

from y8m.errors import UsageError


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yields a temporary path beside `path`; renames it onto `path` only if the block succeeds.

    Readers therefore never see a half-written file, and a crash leaves the old file intact.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=directory)
    os.close(fd)
    # mkstemp creates 0600; give the result the permissions a plain open() would have.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w", **kwargs):
    """`open()` for writing, made atomic with `atomic_path`."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f


def expand_pattern(pattern: str, what: str = "files") -> list[str]:
    """Sorted files matching a glob (or comma-separated globs); a UsageError if none match."""
    if not pattern:
        raise UsageError(f"no {what} pattern given: pass a glob such as 'data/train*.tfrecord'")
    files: list[str] = []
    for part in str(pattern).split(","):
        part = os.path.expanduser(part.strip())
        if part:
            files.extend(p for p in glob.glob(part) if os.path.isfile(p))
    files = sorted(set(files))
    if not files:
        raise UsageError(f"no {what} match {pattern!r}: check the path and quote the glob")
    return files
