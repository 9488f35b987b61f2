"""The two stages of thesis section 4.3: names per movie, then actions jointly over all movies."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from extras.bcfw.problem import Problem
from extras.bcfw.solvers import BCFW
from y8m.errors import UsageError


@dataclasses.dataclass(frozen=True)
class Bag:
    """A script-mined bag: at least α of `samples` carry `label` (eq. 4.10, 4.17).

    Attributes:
        samples: row ids (tracks) of the bag, all in one block.
        label: the named class (a character for stage 1, an action for stage 2); never 0,
            which is the background.
        person: for an action bag, the character the script says performs it (a column of the
            person assignment), or -1 when the script names nobody.
    """

    samples: np.ndarray
    label: int
    person: int = -1


@dataclasses.dataclass(frozen=True)
class Movie:
    """Stage-1 input for one movie.

    Attributes:
        features: [F, d1] face-track descriptors.
        num_people: characters + 1 (label 0 is the background character).
        bags: character bags over the movie's face tracks (row ids into `features`).
    """

    features: np.ndarray
    num_people: int
    bags: Sequence[Bag]


def constrained_problem(
    X: np.ndarray,
    num_classes: int,
    blocks: Sequence[np.ndarray],
    bags: Sequence[Bag],
    alpha: float = 1.0,
    background_fraction: float = 0.3,
    weights: Sequence[np.ndarray | None] | None = None,
    lam: float = 1e-6,
    kappa: float = 1e-6,
    bias: bool = True,
    bias_value: float = 1.0,
) -> Problem:
    """A Problem with one slack "at least α" constraint per bag and, in every block, the
    background constraint over the block's samples that no bag holds (eq. 4.13, 4.19-4.21).

    Args:
        X: [N, d] features.
        num_classes: K, background (0) included.
        blocks: index arrays partitioning range(N).
        bags: the bags; each bag's samples must stay within one block.
        alpha: lower bound of every bag.
        background_fraction: least share of the unconstrained samples in the background.
        weights: per-bag sample weights (None entries mean ones), e.g. from `person_weights`.
        lam, kappa, bias, bias_value: as in `Problem`.

    Returns:
        The Problem, bags in the order given.
    """
    problem = Problem(
        X, num_classes, blocks, lam=lam, kappa=kappa, bias=bias, bias_value=bias_value
    )
    weights = [None] * len(bags) if weights is None else list(weights)
    if len(weights) != len(bags):
        raise UsageError(f"{len(weights)} weight arrays for {len(bags)} bags; pass one each")
    in_bag = np.zeros(problem.num_samples, dtype=bool)
    for bag, w in zip(bags, weights):
        problem.add_bag(bag.samples, bag.label, lower_bound=alpha, weights=w)
        in_bag[np.asarray(bag.samples)] = True
    if background_fraction > 0:
        for rows in problem.blocks:
            free = rows[~in_bag[rows]]
            if free.size:
                problem.add_background(free, background_fraction)
    return problem


def person_weights(
    bags: Sequence[Bag],
    person_assignment: np.ndarray,
    track_map: np.ndarray,
    no_person_weight: float = 0.1,
) -> list[np.ndarray | None]:
    """Sample weights of the person-action constraint (eq. 4.11): w_t = Z[track_map[t], p].

    The product Z·T of eq. 4.11 is linearised by fixing Z to the stage-1 assignment, as the
    thesis code does. An action track without a face track maps to row len(Z) (one past the
    end), which weighs `no_person_weight` for every person (0.1 in the thesis code).

    Args:
        bags: action bags; those with person = -1 get None (weights of one).
        person_assignment: [R, P] stage-1 assignment Z of all face tracks.
        track_map: [N] row of Z for each action track (0-based), R for "no face track".
        no_person_weight: weight of action tracks with no face track.

    Returns:
        One weight array (or None) per bag.
    """
    Z = np.asarray(person_assignment, dtype=np.float64)
    track_map = np.asarray(track_map).ravel()
    if Z.ndim != 2:
        raise UsageError(f"person assignment must be a [rows, people] matrix, got {Z.shape}")
    if track_map.size and (track_map.min() < 0 or track_map.max() > Z.shape[0]):
        raise UsageError(
            f"track map points to person rows up to {track_map.max()} but the person "
            f"assignment has {Z.shape[0]} rows (plus one 'no person' row)"
        )
    Z = np.vstack([Z, np.full((1, Z.shape[1]), no_person_weight)])
    out: list[np.ndarray | None] = []
    for bag in bags:
        if bag.person < 0:
            out.append(None)
            continue
        if bag.person >= Z.shape[1]:
            raise UsageError(
                f"a bag names person {bag.person} but the assignment has {Z.shape[1]} columns"
            )
        out.append(Z[track_map[np.asarray(bag.samples)], bag.person])
    return out


def fit_names(
    movies: Sequence[Movie],
    alpha: float = 1.0,
    background_fraction: float = 0.3,
    lam: float = 1e-6,
    kappa: float = 1e-6,
    bias: bool = True,
    solver: BCFW | None = None,
) -> list[np.ndarray]:
    """Stage 1: discriminative clustering of face tracks into characters, one movie at a time.

    Args:
        movies: per-movie features and character bags.
        alpha, background_fraction, lam, kappa, bias: as in `constrained_problem` (the thesis
            uses a background fraction of 0.3 for names).
        solver: estimator to fit (cloned per movie by re-fitting; default BCFW()).

    Returns:
        One relaxed person assignment Z_m [F_m, num_people_m] per movie.
    """
    solver = BCFW() if solver is None else solver
    out = []
    for movie in movies:
        n = np.asarray(movie.features).shape[0]
        problem = constrained_problem(
            movie.features,
            movie.num_people,
            [np.arange(n)],
            movie.bags,
            alpha=alpha,
            background_fraction=background_fraction,
            lam=lam,
            kappa=kappa,
            bias=bias,
        )
        out.append(solver.fit(problem).Y_.copy())
    return out


def stack_assignments(assignments: Sequence[np.ndarray]) -> np.ndarray:
    """Stacks per-movie person assignments vertically, padding missing columns with zeros."""
    width = max(Z.shape[1] for Z in assignments)
    return np.vstack([np.pad(Z, ((0, 0), (0, width - Z.shape[1]))) for Z in assignments])


def one_hot(Y: np.ndarray) -> np.ndarray:
    """Rounds a relaxed assignment [N, K] to its binary argmax [N, K]."""
    Y = np.asarray(Y)
    out = np.zeros_like(Y, dtype=np.float64)
    out[np.arange(Y.shape[0]), np.argmax(Y, axis=1)] = 1.0
    return out


def fit_two_stage(
    movies: Sequence[Movie],
    X: np.ndarray,
    num_actions: int,
    blocks: Sequence[np.ndarray],
    bags: Sequence[Bag],
    track_map: np.ndarray,
    alpha_names: float = 1.0,
    alpha_actions: float = 2.0,
    background_names: float = 0.3,
    background_actions: float = 0.4,
    no_person_weight: float = 0.1,
    round_names: bool = True,
    lam: float = 1e-6,
    kappa: float = 1e-6,
    bias: bool = True,
    solver: BCFW | None = None,
) -> tuple[list[np.ndarray], BCFW]:
    """Section 4.3 end to end: names per movie, then actions over all movies with the
    person-action constraint.

    Args:
        movies: stage-1 inputs; face-track rows of movie m are offset by the face tracks of
            movies before it in the stacked assignment.
        X: [N, d2] action-track descriptors of all movies.
        num_actions: K2, background (0) included.
        blocks: the action tracks of each movie (the BCFW blocks).
        bags: action bags; `person` is a character label of that movie.
        track_map: [N] stacked face-track row for each action track, or the total number of
            face tracks for "no face track".
        alpha_names, alpha_actions: lower bounds α1, α2 (eq. 4.19-4.21).
        background_names, background_actions: background fractions α and β (eq. 4.13, 4.15).
        no_person_weight, lam, kappa, bias: as in `person_weights` and `Problem`.
        round_names: weigh action tracks by the rounded (binary) person assignment, the Z of
            eq. 4.14-4.15; the relaxed Z is often too flat to single out the named person.
        solver: estimator used for both stages (default BCFW()).

    Returns:
        (per-movie person assignments Z_m, the fitted action solver with T in `Y_`).
    """
    solver = BCFW() if solver is None else solver
    names = fit_names(
        movies, alpha_names, background_names, lam=lam, kappa=kappa, bias=bias, solver=solver
    )
    Z = stack_assignments(names)
    weights = person_weights(bags, one_hot(Z) if round_names else Z, track_map, no_person_weight)
    problem = constrained_problem(
        X,
        num_actions,
        blocks,
        bags,
        alpha=alpha_actions,
        background_fraction=background_actions,
        weights=weights,
        lam=lam,
        kappa=kappa,
        bias=bias,
    )
    return names, solver.fit(problem)
