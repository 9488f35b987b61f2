"""File output that never leaves a half-written or half-replaced result, and glob expansion.

- `atomic_path`/`atomic_open`: one file, written to a temporary beside it and renamed over it
  only when the block succeeds.
- `atomic_files`: several files that belong together (a submission and its recipe, a store
  and its CSV, a model and its record) replaced as one unit through a journal, finished by
  the next `recover_files` if a kill interrupts the renames; readers check the set's manifest.
- Temporaries are named `.tmp-<pid>-<random>-<name>`; those of dead processes are removed the
  next time the same file is written.
- OS errors on outputs (a directory in the way, read-only or full disk) become one line:
  `cannot write PATH: reason`.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence

from y8m.errors import UsageError

_PREFIX = ".tmp-"


def _temporary(path: str) -> str:
    directory = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    try:
        if os.path.isdir(path):
            raise IsADirectoryError(21, "is a directory")
        os.makedirs(directory, exist_ok=True)
        clean_stale_temporaries(path)
        # The name ends with the target's, so tools that insist on a suffix (Keras' .keras,
        # pandas' .gz) see the right one.
        fd, tmp = tempfile.mkstemp(
            prefix=f"{_PREFIX}{os.getpid()}-", suffix=f"-{name}", dir=directory
        )
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror or err}") from None
    os.close(fd)
    # mkstemp creates 0600; give the result the permissions a plain open() would have.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return tmp


def clean_stale_temporaries(path: str) -> list[str]:
    """Removes temporaries of PATH left by processes that no longer run; returns them."""
    directory = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    removed = []
    for tmp in glob.glob(os.path.join(glob.escape(directory), f"{_PREFIX}*-{glob.escape(name)}")):
        pid = os.path.basename(tmp)[len(_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                os.remove(tmp)
                removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yields a temporary path beside `path`; renames it onto `path` only if the block succeeds.

    Readers therefore never see a half-written file, and a crash or a failed write (a full
    disk) leaves the old file intact. OS errors become `UsageError("cannot write PATH: ...")`.
    """
    path = os.fspath(path)
    tmp = _temporary(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror or err}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w", **kwargs):
    """`open()` for writing, made atomic with `atomic_path`."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f


@contextlib.contextmanager
def atomic_files(paths: Sequence[str], manifest: str) -> Iterator[dict[str, str]]:
    """Yields `{path: temporary}` for PATHS; when the block succeeds they replace their targets
    as one unit, and MANIFEST (JSON: each file's name, size and sha256) records the set.

    The unit: once every temporary is complete, a journal (`MANIFEST.pending`, naming the
    renames) is written, then the files are renamed, then the manifest is written and the
    journal removed. A kill during the renames leaves the journal, and the next
    `recover_files(MANIFEST)` (every writer and reader of the set calls it) finishes them, so
    a set is never seen half old, half new. A failure before the journal leaves the old set.
    """
    recover_files(manifest)
    temporaries = {os.fspath(p): _temporary(os.fspath(p)) for p in paths}
    try:
        yield temporaries
        files = {p: _describe(t) for p, t in temporaries.items()}
        journal = {"renames": [[t, p] for p, t in temporaries.items()], "files": files}
        with atomic_open(manifest + ".pending", "w") as f:
            json.dump(journal, f)
        recover_files(manifest)
    except OSError as err:
        raise UsageError(f"cannot write {manifest}: {err.strerror or err}") from None
    finally:
        for tmp in temporaries.values():
            if os.path.exists(tmp) and not os.path.exists(manifest + ".pending"):
                os.remove(tmp)


def recover_files(manifest: str) -> bool:
    """Finishes a set commit a kill interrupted (see `atomic_files`); True if there was one."""
    pending = manifest + ".pending"
    if not os.path.exists(pending):
        return False
    with open(pending) as f:
        journal = json.load(f)
    for tmp, path in journal["renames"]:
        if os.path.exists(tmp):
            os.replace(tmp, path)
    entries = {
        os.path.relpath(p, os.path.dirname(os.path.abspath(manifest))): d
        for p, d in journal["files"].items()
    }
    with atomic_open(manifest, "w") as f:
        json.dump({"files": entries}, f, indent=2, sort_keys=True)
    os.remove(pending)
    return True


def check_files(manifest: str) -> dict:
    """The manifest of a set written by `atomic_files`, after checking that every file in it
    is on disk as written; a UsageError naming the first that is missing or differs."""
    recover_files(manifest)
    try:
        with open(manifest) as f:
            entries = json.load(f)["files"]
    except (OSError, ValueError, KeyError) as err:
        raise UsageError(f"cannot read the manifest {manifest}: {err}") from None
    base = os.path.dirname(os.path.abspath(manifest))
    for name, want in entries.items():
        path = os.path.join(base, name)
        if not os.path.exists(path) or _describe(path) != want:
            raise UsageError(
                f"{path} is not the file {manifest} lists (missing or from another run): "
                "write the set again"
            )
    return entries


def _describe(path: str) -> dict:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": os.path.getsize(path), "sha256": digest.hexdigest()}


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
