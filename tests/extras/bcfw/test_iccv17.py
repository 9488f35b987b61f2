"""ICCV17 .mat structure: the shipped files give the paper's counts; the loader's semantics."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from extras.bcfw.iccv17 import iccv17_problem, load_array, load_iccv17
from y8m.errors import UsageError

from ._fake_iccv17 import FACE_ROWS, write_fake_iccv17


def test_shipped_structure_has_the_papers_counts(iccv17_structure):
    s = iccv17_structure
    assert (s.num_tracks, s.num_bags, s.num_movies, s.num_classes) == (201_874, 1634, 66, 14)
    sizes = np.array([b.size for b in s.blocks])
    assert sizes.sum() == 201_874 and (sizes.min(), sizes.max()) == (816, 10_369)
    # Table 4.1, constraints row: bags per action (Stand Up ... Drive are labels 1..13).
    table_4_1 = [237, 85, 146, 46, 49, 70, 81, 244, 44, 99, 156, 208, 169]
    np.testing.assert_array_equal(np.bincount(s.bag_action, minlength=14)[1:], table_4_1)
    assert (s.bag_person >= 0).sum() == 552
    samples = s.bag_samples()
    bag_sizes = np.array([b.size for b in samples])
    in_bags = np.unique(np.concatenate(samples))
    assert in_bags.size == 17_101
    assert s.num_tracks - in_bags.size == 184_773
    assert (bag_sizes == 0).sum() == 3
    assert (np.median(bag_sizes), bag_sizes.max()) == (9, 161)
    no_face = s.track_map == s.track_map.max()
    assert no_face.sum() == 104_186 and s.track_map.max() == 122_967


def test_shipped_structure_builds_the_papers_problem(iccv17_structure):
    X = np.random.default_rng(0).normal(size=(iccv17_structure.num_tracks, 2))
    problem, bag_ids = iccv17_problem(iccv17_structure, X)
    assert problem.num_bags == 1631 and bag_ids.size == 1631  # the 3 empty bags are left out
    assert problem.num_blocks == 66 and len(problem.backgrounds) == 66
    assert sum(bg.samples.size for bg in problem.backgrounds) == 184_773
    assert all(bg.lower == pytest.approx(0.4 * bg.samples.size) for bg in problem.backgrounds)
    assert {bag.lower for bag in problem.bags} == {2.0}
    assert problem.bias and problem.num_features == 3


def test_person_assignment_weights_bags_that_name_a_person(iccv17_structure):
    s = iccv17_structure
    Z = np.zeros((int(s.track_map.max()), 40))
    Z[:, 5] = 1.0  # every face track is character 6 (column 5)
    X = np.zeros((s.num_tracks, 1))
    problem, bag_ids = iccv17_problem(s, X, person_assignment=Z, lam=1.0)
    for bag, k in zip(problem.bags, bag_ids):
        no_face = s.track_map[bag.samples] == Z.shape[0]
        if s.bag_person[k] < 0:
            np.testing.assert_array_equal(bag.weights, 1.0)
        else:
            expected = np.where(no_face, 0.1, 1.0 if s.bag_person[k] == 5 else 0.0)
            np.testing.assert_array_equal(bag.weights, expected)


def test_loader_reads_bags_blocks_and_overlap_semantics(tmp_path):
    truth = write_fake_iccv17(tmp_path)
    s = load_iccv17(str(tmp_path))
    assert s.num_tracks == 90 and s.num_movies == 3 and s.num_bags == len(truth["bags"])
    for got, want in zip(s.blocks, truth["blocks"]):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(s.track_map, truth["track_map"])
    for samples, (_, _, (lo, hi), movie) in zip(s.bag_samples(), truth["bags"]):
        rows = truth["blocks"][movie]
        f = truth["frames"][rows]
        expected = [t for t, (a, b) in zip(rows, f) if a < hi and b > lo]  # strict overlap
        np.testing.assert_array_equal(samples, expected)
    np.testing.assert_array_equal(s.bag_action, [a for a, *_ in truth["bags"]])
    np.testing.assert_array_equal(s.bag_person, [p for _, p, *_ in truth["bags"]])
    bags, kept = s.bags()
    assert len(bags) == kept.size == s.num_bags - 3  # one empty bag per movie


def test_features_rows_mismatch_is_a_usage_error(tmp_path):
    write_fake_iccv17(tmp_path)
    s = load_iccv17(str(tmp_path))
    with pytest.raises(UsageError, match="features/rows mismatch"):
        iccv17_problem(s, np.zeros((89, 4)))
    with pytest.raises(UsageError, match="rows"):
        iccv17_problem(s, np.zeros((90, 4)), person_assignment=np.zeros((FACE_ROWS - 5, 3)))


def test_missing_or_broken_files_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="bags.mat not found"):
        load_iccv17(str(tmp_path))
    write_fake_iccv17(tmp_path)
    scipy.io.savemat(tmp_path / "data_block.mat", {"something_else": np.zeros(3)})
    with pytest.raises(UsageError, match="movie_block"):
        load_iccv17(str(tmp_path))
    (tmp_path / "bags.mat").write_bytes(b"not a mat file")
    with pytest.raises(UsageError, match="cannot read"):
        load_iccv17(str(tmp_path))


def test_load_array_reads_npy_npz_and_mat(tmp_path):
    X = np.arange(12.0).reshape(4, 3)
    np.save(tmp_path / "x.npy", X)
    np.savez(tmp_path / "x.npz", X=X)
    scipy.io.savemat(tmp_path / "x.mat", {"X": X})
    for name in ("x.npy", "x.npz", "x.mat"):
        np.testing.assert_array_equal(load_array(str(tmp_path / name)), X)
    with pytest.raises(UsageError, match="does not exist"):
        load_array(str(tmp_path / "nope.npy"))
    (tmp_path / "x.txt").write_text("1 2 3")
    with pytest.raises(UsageError, match="expected .npy"):
        load_array(str(tmp_path / "x.txt"))
