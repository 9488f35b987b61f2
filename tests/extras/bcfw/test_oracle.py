"""Block oracle: closed form, greedy and HiGHS paths against an independent LP."""

from __future__ import annotations

import numpy as np
import pytest

from extras.bcfw import Problem
from extras.bcfw.oracle import BlockOracle

from ._reference import cp


def _lp_value(problem: Problem, G: np.ndarray, g: np.ndarray) -> float:
    """min ⟨G, S⟩ + ⟨g, s⟩ over the block polytope, every variable explicit, solved by cvxpy."""
    N, K = G.shape
    S = cp.Variable((N, K))
    s = cp.Variable(problem.num_bags)
    cons = [S >= 0, cp.sum(S, axis=1) == 1, s >= 0]
    for k, bag in enumerate(problem.bags):
        cons += [bag.weights @ S[bag.samples, bag.label] + s[k] >= bag.lower]
        cons += [s[k] <= (bag.lower if bag.slack else 0.0)]
    for bg in problem.backgrounds:
        cons += [cp.sum(S[bg.samples, bg.label]) >= bg.lower]
    lp = cp.Problem(cp.Minimize(cp.sum(cp.multiply(G, S)) + g @ s), cons)
    lp.solve(solver="CLARABEL")
    return float(lp.value)


def _random_block(rng: np.random.Generator) -> Problem:
    n, K = int(rng.integers(8, 30)), int(rng.integers(2, 6))
    problem = Problem(rng.normal(size=(n, 2)), K, [np.arange(n)])
    for _ in range(int(rng.integers(1, 5))):
        start = int(rng.integers(0, n - 2))
        rows = np.arange(start, min(n, start + int(rng.integers(1, 6))))
        weights = rng.uniform(0.2, 1.0, rows.size) if rng.random() < 0.5 else None
        supply = rows.size if weights is None else weights.sum()
        slack = rng.random() < 0.8 or any(
            np.intersect1d(b.samples, rows).size for b in problem.bags
        )
        lower = float(rng.uniform(0.2, 1.5)) if slack else 0.9 * supply
        problem.add_bag(rows, int(rng.integers(0, K)), lower, weights=weights, slack=slack)
    free = np.setdiff1d(np.arange(n), np.concatenate([b.samples for b in problem.bags]))
    if free.size and rng.random() < 0.7:
        problem.add_background(free, float(rng.uniform(0, 1)))
    return problem


@pytest.mark.parametrize("seed", range(12))
def test_oracle_value_matches_an_independent_lp(seed):
    rng = np.random.default_rng(seed)
    problem = _random_block(rng)
    for mode in ("auto", "lp"):
        oracle = problem.oracles(mode)[0]
        for _ in range(2):
            G = rng.normal(size=(problem.num_samples, problem.num_classes))
            g = rng.uniform(0, 0.5, problem.num_bags) * (rng.random() < 0.7)
            S, s = oracle(G, g)
            assert problem.constraint_violation(S, s) < 1e-8
            value = np.vdot(G, S) + g @ s
            assert value == pytest.approx(_lp_value(problem, G, g), abs=1e-6)


def test_greedy_and_highs_paths_are_both_exercised():
    problem = Problem(np.zeros((10, 2)), 3, [np.arange(10)])
    problem.add_bag([0, 1], 1)
    problem.add_bag([1, 2], 2)  # shares row 1: coupled, solved by HiGHS
    problem.add_bag([4, 5], 1)  # alone: greedy
    problem.add_background([7, 8, 9], 0.5)  # alone: greedy
    oracle = problem.oracles()[0]
    assert oracle.lp is not None and len(oracle.greedy) == 2
    np.testing.assert_array_equal(oracle.free_rows, [3, 6])


def test_unconstrained_block_takes_each_rows_cheapest_label():
    G = np.random.default_rng(0).normal(size=(7, 4))
    S, s = BlockOracle(7, 4, [], 0)(G, np.zeros(0))
    np.testing.assert_array_equal(S, np.eye(4)[G.argmin(axis=1)])
    assert s.size == 0


def test_free_slack_absorbs_a_bag_and_costly_slack_is_avoided():
    problem = Problem(np.zeros((3, 2)), 2, [np.arange(3)])
    problem.add_bag([0, 1, 2], 1, lower_bound=1.0)
    oracle = problem.oracles()[0]
    G = np.array([[0.0, 1.0]] * 3)  # label 1 costs 1 per unit on every row
    S, s = oracle(G, np.array([0.0]))
    assert s[0] == pytest.approx(1.0) and S[:, 1].sum() == pytest.approx(0.0)
    S, s = oracle(G, np.array([5.0]))
    assert s[0] == pytest.approx(0.0) and S[:, 1].sum() == pytest.approx(1.0)
