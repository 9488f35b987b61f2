"""Independent references for the BCFW tests: cvxpy QP and LP, random instances."""

from __future__ import annotations

import numpy as np
import pytest

from extras.bcfw import Problem

cp = pytest.importorskip("cvxpy")


def design(problem: Problem) -> np.ndarray:
    """X̃ as a dense matrix, with the bias column when the problem has one."""
    X = np.asarray(problem.X.todense() if hasattr(problem.X, "todense") else problem.X, float)
    if problem.bias:
        X = np.hstack([X, np.full((X.shape[0], 1), problem.bias_value)])
    return X


def qp_optimum(problem: Problem) -> float:
    """Optimum of the relaxed problem in its ridge form (eq. 4.1, W kept as a variable):

    min over Y, W, ξ of ‖Y − X̃W‖²/(2N) + λ/2 ‖W‖² + κ‖ξ‖² under the same constraints, which
    equals ⟨Y, A Y⟩ + κ‖ξ‖² after minimising over W, without any of the solver's algebra.
    """
    X = design(problem)
    N, K = problem.num_samples, problem.num_classes
    Y = cp.Variable((N, K))
    W = cp.Variable((X.shape[1], K))
    cost = cp.sum_squares(Y - X @ W) / (2 * N) + problem.lam / 2 * cp.sum_squares(W)
    cons = [Y >= 0, cp.sum(Y, axis=1) == 1]
    if problem.num_bags:
        xi = cp.Variable(problem.num_bags)
        cost = cost + problem.kappa * cp.sum_squares(xi)
        cons.append(xi >= 0)
        for k, bag in enumerate(problem.bags):
            cons.append(bag.weights @ Y[bag.samples, bag.label] + xi[k] >= bag.lower)
            if not bag.slack:
                cons.append(xi[k] == 0)
    for bg in problem.backgrounds:
        cons.append(cp.sum(Y[bg.samples, bg.label]) >= bg.lower)
    qp = cp.Problem(cp.Minimize(cost), cons)
    qp.solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    assert qp.status == "optimal", qp.status
    return float(qp.value)


def random_instance(
    seed: int,
    num_samples: int = 30,
    num_features: int = 3,
    num_classes: int = 3,
    num_blocks: int = 3,
    overlap: bool = False,
    weighted: bool = False,
    bias: bool = False,
    lam: float = 0.1,
    kappa: float = 0.1,
) -> Problem:
    """A small problem with per-block bags (soft and hard) and a background constraint."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(num_samples, num_features))
    edges = np.linspace(0, num_samples, num_blocks + 1).astype(int)
    blocks = [np.arange(edges[i], edges[i + 1]) for i in range(num_blocks)]
    problem = Problem(X, num_classes, blocks, lam=lam, kappa=kappa, bias=bias)
    for rows in blocks:
        w = rng.uniform(0.5, 1.0, size=3) if weighted else None
        problem.add_bag(rows[:3], int(rng.integers(1, num_classes)), lower_bound=1.2, weights=w)
        if overlap:  # shares rows[2] with the first bag: the HiGHS path
            problem.add_bag(rows[2:5], int(rng.integers(1, num_classes)), lower_bound=1.0)
        else:
            problem.add_bag(rows[3:5], int(rng.integers(1, num_classes)), slack=False)
        problem.add_background(rows[5:], 0.5)
    return problem
