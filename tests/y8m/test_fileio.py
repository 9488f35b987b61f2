"""Atomic outputs: single files, sets replaced as a unit, stale temporaries, OS errors."""

import errno
import json
import os

import pytest

from y8m import fileio
from y8m.errors import UsageError


def test_failed_write_keeps_the_old_file_and_names_the_path(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("good")
    with pytest.raises(UsageError, match=r"cannot write .*out.txt: No space left on device"):
        with fileio.atomic_open(str(target), "w") as f:
            f.write("partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert target.read_text() == "good"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]


@pytest.mark.parametrize("case", ["directory", "under_a_file"])
def test_unwritable_output_is_one_line(tmp_path, case):
    target = tmp_path / "out"
    if case == "directory":
        target.mkdir()
    else:
        (tmp_path / "file").write_text("x")
        target = tmp_path / "file" / "out"
    with pytest.raises(UsageError, match=f"cannot write {target}"):
        with fileio.atomic_open(str(target)) as f:
            f.write("x")


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    target = tmp_path / "store.parquet"
    dead = tmp_path / ".tmp-999999999-abc_12-store.parquet"  # no such pid
    alive = tmp_path / f".tmp-{os.getpid()}-xyz-store.parquet"
    other = tmp_path / ".tmp-999999999-abc-other.parquet"
    for p in (dead, alive, other):
        p.write_text("")
    with fileio.atomic_open(str(target)) as f:
        f.write("new")
    assert not dead.exists() and alive.exists() and other.exists()


def _write_set(tmp_path, text):
    paths = [str(tmp_path / "a.csv"), str(tmp_path / "a.recipe.json")]
    with fileio.atomic_files(paths, str(tmp_path / "a.manifest.json")) as temporaries:
        for path, tmp in temporaries.items():
            with open(tmp, "w") as f:
                f.write(f"{text} {os.path.basename(path)}")
    return paths


def test_a_set_is_replaced_as_a_unit_even_when_killed_between_renames(tmp_path, monkeypatch):
    manifest = str(tmp_path / "a.manifest.json")
    paths = _write_set(tmp_path, "old")
    assert set(fileio.check_files(manifest)) == {"a.csv", "a.recipe.json"}
    real_replace, calls = os.replace, []

    def killed_after_the_first_file(src, dst):
        calls.append(dst)
        if str(dst).endswith("a.recipe.json"):
            raise KeyboardInterrupt  # a kill between the two renames
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed_after_the_first_file)
    with pytest.raises(KeyboardInterrupt):
        _write_set(tmp_path, "new")
    monkeypatch.setattr(os, "replace", real_replace)
    # Half replaced on disk, but the journal says so: a reader finishes the commit first.
    assert open(paths[0]).read() == "new a.csv" and open(paths[1]).read() == "old a.recipe.json"
    assert os.path.exists(manifest + ".pending")
    fileio.check_files(manifest)
    assert [open(p).read() for p in paths] == ["new a.csv", "new a.recipe.json"]
    assert not os.path.exists(manifest + ".pending")


def test_a_file_from_another_run_breaks_the_set(tmp_path):
    manifest = str(tmp_path / "a.manifest.json")
    paths = _write_set(tmp_path, "one")
    with open(paths[1], "w") as f:
        f.write("edited")
    with pytest.raises(UsageError, match="a.recipe.json is not the file"):
        fileio.check_files(manifest)
    assert json.load(open(manifest))["files"]["a.csv"]["bytes"] == len("one a.csv")


def test_a_failure_before_the_commit_leaves_the_old_set(tmp_path):
    manifest = str(tmp_path / "a.manifest.json")
    paths = _write_set(tmp_path, "old")
    with pytest.raises(RuntimeError):
        with fileio.atomic_files(paths, manifest) as temporaries:
            open(temporaries[paths[0]], "w").write("new")
            raise RuntimeError("boom")
    assert [open(p).read() for p in paths] == ["old a.csv", "old a.recipe.json"]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]
