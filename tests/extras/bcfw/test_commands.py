"""`y8m extras bcfw ...` and `y8m bench bcfw`: outputs, figures and user errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io
import scipy.sparse

from extras.bcfw.commands import Commands, _sizes
from y8m.errors import UsageError

from ._fake_iccv17 import FACE_ROWS, write_fake_iccv17


@pytest.fixture()
def fake(tmp_path):
    data = tmp_path / "iccv17"
    write_fake_iccv17(data)
    rng = np.random.default_rng(0)
    np.save(tmp_path / "X.npy", rng.normal(size=(90, 4)))
    np.save(tmp_path / "Z.npy", rng.dirichlet(np.ones(3), size=FACE_ROWS))
    return tmp_path


def test_solve_writes_assignments_and_classifier(fake, capsys):
    out = fake / "out"
    summary = Commands().solve(
        features=str(fake / "X.npy"),
        data_dir=str(fake / "iccv17"),
        output_dir=str(out),
        person_assignment=str(fake / "Z.npy"),
        kappa=0.05,
        max_iter=300,
    )
    Y = np.load(out / "assignments.npy")
    labels = np.load(out / "labels.npy")
    W = np.load(out / "W.npy")
    xi = np.load(out / "xi.npy")
    bag_ids = np.load(out / "bag_ids.npy")
    assert Y.shape == (90, 14) and W.shape == (5, 14)  # 4 features + the bias column
    assert xi.shape == bag_ids.shape == (12,)  # 15 bags, 3 of them empty
    np.testing.assert_allclose(Y.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_array_equal(labels, Y.argmax(axis=1))
    X = np.hstack([np.load(fake / "X.npy"), np.ones((90, 1))])
    np.testing.assert_allclose(W, np.linalg.solve(X.T @ X + 90e-6 * np.eye(5), X.T @ Y), atol=1e-8)
    saved = json.loads((out / "summary.json").read_text())
    assert saved["steps"] == summary["steps"] <= 300
    assert saved["history"]["gap"][0] == summary["initial_gap"]
    assert sum(saved["label_counts"]) == 90
    assert "wrote" in capsys.readouterr().out
    assert not list(out.glob(".tmp-*"))  # atomic writes leave no temporaries


def test_solve_reads_sparse_mat_features_and_runs_full_frank_wolfe(fake):
    X = scipy.sparse.random(90, 6, density=0.5, random_state=1, format="csc")
    scipy.io.savemat(fake / "X.mat", {"X": X})
    summary = Commands().solve(
        features=str(fake / "X.mat"),
        data_dir=str(fake / "iccv17"),
        output_dir=str(fake / "out_fw"),
        solver="fw",
        max_iter=20,
    )
    assert summary["solver"] == "fw" and summary["steps"] <= 20
    assert np.load(fake / "out_fw" / "W.npy").shape == (7, 14)


def test_solve_user_errors(fake):
    data = str(fake / "iccv17")
    with pytest.raises(UsageError, match="--features"):
        Commands().solve(data_dir=data)
    with pytest.raises(UsageError, match="not a folder"):
        Commands().solve(features=str(fake / "X.npy"), data_dir=str(fake / "nowhere"))
    np.save(fake / "short.npy", np.zeros((80, 4)))
    with pytest.raises(UsageError, match="features/rows mismatch"):
        Commands().solve(features=str(fake / "short.npy"), data_dir=data)
    np.save(fake / "flat.npy", np.zeros(90))
    with pytest.raises(UsageError, match="2-D"):
        Commands().solve(features=str(fake / "flat.npy"), data_dir=data)
    with pytest.raises(UsageError, match="--solver"):
        Commands().solve(features=str(fake / "X.npy"), data_dir=data, solver="cvx")


def test_inspect_reports_the_shipped_counts(iccv17_dir, capsys):
    counts = Commands().inspect(data_dir=str(iccv17_dir))
    assert counts["tracks"] == 201_874 and counts["bags"] == 1634 and counts["classes"] == 14
    assert counts["empty_bags"] == 3 and counts["tracks_in_bags"] == 17_101
    assert "201874" in capsys.readouterr().out


def test_bench_prints_tables_then_one_json_line(fake, capsys):
    Commands().bench(
        data_dir=str(fake / "iccv17"),
        num_features=4,
        max_time=2.0,
        sizes="300,600",
        block_size=100,
        steps=20,
        fw_steps=2,
    )
    lines = capsys.readouterr().out.strip().splitlines()
    figures = json.loads(lines[-1])
    assert figures["bench"] == "bcfw"
    assert [row["n"] for row in figures["scaling"]] == [300, 600]
    assert [row["blocks"] for row in figures["scaling"]] == [3, 6]
    for row in figures["scaling"]:
        assert row["bcfw_ms_per_step"] > 0 and row["fw_ms_per_step"] > 0
    structure = figures["iccv17"]
    assert structure["structure"]["tracks"] == 90 and structure["structure"]["bags"] == 12
    for solver in ("bcfw", "fw"):
        assert 0 <= structure[solver]["acc"] <= 1 and structure[solver]["steps"] >= 0
    assert any(line.startswith("BCFW") for line in lines)


def test_bench_can_skip_the_real_structure(capsys):
    Commands().bench(sizes="200", block_size=100, steps=5, fw_steps=1, skip_structure=True)
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["iccv17"] is None and len(figures["scaling"]) == 1


@pytest.mark.parametrize(
    "given, expected", [("1e4,2e4", [10_000, 20_000]), ((5, 6), [5, 6]), (7, [7])]
)
def test_sizes_accept_what_fire_passes(given, expected):
    assert _sizes(given) == expected


@pytest.mark.parametrize("given", ["", "a,b", "0"])
def test_bad_sizes_are_usage_errors(given):
    with pytest.raises(UsageError, match="--sizes"):
        _sizes(given)
