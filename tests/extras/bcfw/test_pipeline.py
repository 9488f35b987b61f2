"""Section 4.3 pipeline: person weights, background sets, names then actions end to end."""

from __future__ import annotations

import numpy as np
import pytest

from extras.bcfw import BCFW
from extras.bcfw.pipeline import (
    Bag,
    Movie,
    constrained_problem,
    fit_two_stage,
    one_hot,
    person_weights,
    stack_assignments,
)
from extras.bcfw.synthetic import planted_features
from y8m.errors import UsageError


def test_person_weights_read_the_assignment_through_the_track_map():
    Z = np.array([[0.0, 0.9, 0.1], [0.0, 0.2, 0.8]])
    track_map = np.array([0, 1, 2, 1])  # 2 = one past the end: no face track
    bags = [Bag(np.array([0, 1, 2]), label=3, person=1), Bag(np.array([3]), label=2)]
    weights = person_weights(bags, Z, track_map, no_person_weight=0.25)
    np.testing.assert_allclose(weights[0], [0.9, 0.2, 0.25])
    assert weights[1] is None
    with pytest.raises(UsageError, match="person rows"):
        person_weights(bags, Z, np.array([0, 5, 0, 0]))
    with pytest.raises(UsageError, match="columns"):
        person_weights([Bag(np.array([0]), 1, person=7)], Z, track_map)


def test_stack_assignments_pads_missing_characters():
    stacked = stack_assignments([np.ones((2, 3)), np.full((1, 2), 0.5)])
    np.testing.assert_array_equal(stacked, [[1, 1, 1], [1, 1, 1], [0.5, 0.5, 0]])


def test_background_constraint_covers_each_blocks_unbagged_samples():
    blocks = [np.arange(5), np.arange(5, 9)]
    bags = [Bag(np.array([0, 1]), 1), Bag(np.array([6]), 2)]
    problem = constrained_problem(np.eye(9), 3, blocks, bags, alpha=1.5, background_fraction=0.5)
    assert [b.lower for b in problem.bags] == [1.5, 1.5]
    got = [(bg.samples.tolist(), bg.lower) for bg in problem.backgrounds]
    assert got == [([2, 3, 4], 1.5), ([5, 7, 8], 1.5)]


def _two_stage_data(seed: int = 0, movies: int = 3):
    """Planted names and actions: faces cluster by character, action tracks by action, and
    every action is done by a character, as the scripts say."""
    rng = np.random.default_rng(seed)
    cast, face_truth, track_map, action_truth, blocks, action_bags = [], [], [], [], [], []
    face_offset = track_offset = 0
    for _ in range(movies):
        n_faces = 200
        who = np.where(rng.random(n_faces) < 0.6, 0, rng.integers(1, 4, n_faces))
        runs = [np.arange(s, s + 4) for s in range(0, n_faces, 4)]
        bags = [Bag(r, int(rng.choice(who[r][who[r] > 0]))) for r in runs if (who[r] > 0).any()]
        cast.append(Movie(planted_features(who, 4, 4, 4.0, rng), 4, bags))
        face_truth.append(who)
        # One action track per face track, then 40 tracks with no face track.
        n_tracks = n_faces + 40
        faces = np.concatenate([np.arange(n_faces) + face_offset, np.full(40, -1)])
        person = np.concatenate([who, np.zeros(40, dtype=int)])
        does = np.where(
            (person > 0) & (rng.random(n_tracks) < 0.6), rng.integers(1, 3, n_tracks), 0
        )
        rows = np.arange(n_tracks) + track_offset
        for s in range(0, n_tracks, 4):
            run = np.arange(s, min(s + 4, n_tracks))
            doers = run[does[run] > 0]
            if doers.size and rng.random() < 0.5:  # scripts mention half of what happens
                t = int(rng.choice(doers))
                action_bags.append(Bag(run + track_offset, int(does[t]), int(person[t])))
        blocks.append(rows)
        track_map.append(faces)
        action_truth.append(does)
        face_offset += n_faces
        track_offset += n_tracks
    track_map = np.concatenate(track_map)
    track_map[track_map < 0] = face_offset  # one past the last face track: no face
    labels = np.concatenate(action_truth)
    X = planted_features(labels, 3, 4, 4.0, rng)
    return cast, face_truth, X, blocks, action_bags, track_map, labels


def test_two_stage_pipeline_recovers_names_and_actions():
    cast, face_truth, X, blocks, bags, track_map, labels = _two_stage_data()
    names, actions = fit_two_stage(
        cast,
        X,
        3,
        blocks,
        bags,
        track_map,
        alpha_actions=1.0,
        background_names=0.5,
        background_actions=0.7,
        lam=1e-2,
        kappa=0.05,
        solver=BCFW(tol=1e-3, random_state=0),
    )
    name_acc = np.mean(np.concatenate([Z.argmax(1) == t for Z, t in zip(names, face_truth)]))
    assert name_acc >= 0.85
    assert (actions.labels_ == labels).mean() >= 0.85
    # The person-action coupling matters: without it (weights of one) actions come out worse.
    problem = constrained_problem(
        X, 3, blocks, bags, alpha=1.0, background_fraction=0.7, lam=1e-2, kappa=0.05
    )
    no_joint = BCFW(tol=1e-3, random_state=0).fit(problem)
    assert (no_joint.labels_ == labels).mean() < (actions.labels_ == labels).mean()


def test_one_hot_rounds_rows_to_their_argmax():
    expected = [[0, 1, 0], [1, 0, 0]]
    np.testing.assert_array_equal(one_hot([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]]), expected)
