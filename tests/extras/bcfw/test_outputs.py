"""`bcfw solve` writes its six files as one set listed in a manifest; readers check it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from extras.bcfw.commands import ARRAYS, MANIFEST, SUMMARY, Commands, read_solution
from y8m.errors import UsageError

from ._fake_iccv17 import write_fake_iccv17


@pytest.fixture()
def solved(tmp_path):
    write_fake_iccv17(tmp_path / "iccv17")
    np.save(tmp_path / "X.npy", np.random.default_rng(0).normal(size=(90, 4)))

    def solve(seed: int = 0):
        return Commands().solve(
            features=str(tmp_path / "X.npy"),
            data_dir=str(tmp_path / "iccv17"),
            output_dir=str(tmp_path / "out"),
            max_iter=30,
            random_state=seed,
        )

    solve()
    return tmp_path / "out", solve


def test_solve_writes_the_set_and_lists_it_in_the_manifest(solved):
    out, _ = solved
    listed = json.loads((out / MANIFEST).read_text())["files"]
    assert sorted(listed) == sorted([*ARRAYS, SUMMARY])
    assert sorted(p.name for p in out.iterdir()) == sorted([*ARRAYS, SUMMARY, MANIFEST])
    solution = read_solution(str(out))
    assert solution["assignments"].shape == (90, 14)
    assert solution["summary"]["tracks"] == 90


def test_a_file_from_another_run_is_refused(solved, tmp_path):
    out, solve = solved
    stale = (out / "W.npy").read_bytes()
    solve(seed=1)  # a second run replaces the whole set
    assert read_solution(str(out))["summary"]["tracks"] == 90
    (out / "W.npy").write_bytes(stale + b"\0")  # a file that is not the set's
    with pytest.raises(UsageError, match="W.npy is not the file .*manifest.json lists"):
        read_solution(str(out))


def test_bad_numbers_are_refused_at_the_edge(solved, tmp_path):
    flags = dict(features=str(tmp_path / "X.npy"), data_dir=str(tmp_path / "iccv17"))
    for bad, message in [
        (dict(max_iter=0), "--max_iter must be at least 1"),
        (dict(tol="abc"), "--tol must be a number"),
        (dict(lam=0), "--lam must be greater than 0"),
        (dict(background_fraction=2), "--background_fraction must be at most 1"),
        (dict(variant="away"), "--variant must be one of fw, pairwise"),
    ]:
        with pytest.raises(UsageError, match=message):
            Commands().solve(**flags, **bad)
    with pytest.raises(UsageError, match="--block_size must be at least 1"):
        Commands().bench(block_size=0, skip_structure=True, sizes="100")
