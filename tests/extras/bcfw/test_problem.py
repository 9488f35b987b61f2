"""Problem: the DIFFRAC cost against its explicit N×N form, and input validation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse

from extras.bcfw import BCFW, Problem
from y8m.errors import UsageError


def _explicit_cost(X, Y, xi, lam, kappa):
    """⟨Y, A Y⟩ + κ‖ξ‖² with A = (I − X(XᵀX + NλI)⁻¹Xᵀ)/(2N) formed explicitly (eq. 4.4)."""
    n, d = X.shape
    A = (np.eye(n) - X @ np.linalg.solve(X.T @ X + n * lam * np.eye(d), X.T)) / (2 * n)
    return float(np.trace(Y.T @ A @ Y) + kappa * xi @ xi)


@pytest.mark.parametrize("bias", [False, True])
def test_objective_equals_explicit_quadratic_form(bias):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5))
    Y = rng.dirichlet(np.ones(4), size=40)
    problem = Problem(X, 4, [np.arange(20), np.arange(20, 40)], lam=0.03, kappa=0.7, bias=bias)
    problem.add_bag([0, 1, 2], 1)
    problem.add_bag([25, 26], 2)
    xi = np.array([0.3, 0.1])
    Xt = np.hstack([X, np.ones((40, 1))]) if bias else X
    assert problem.objective(Y, xi) == pytest.approx(_explicit_cost(Xt, Y, xi, 0.03, 0.7), 1e-10)


def test_classifier_is_the_ridge_solution():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 4))
    Y = rng.dirichlet(np.ones(3), size=30)
    problem = Problem(X, 3, [np.arange(30)], lam=0.1)
    # Ridge regression of eq. 4.1 solved by least squares on the augmented system.
    aug_X = np.vstack([X, np.sqrt(30 * 0.1) * np.eye(4)])
    aug_Y = np.vstack([Y, np.zeros((4, 3))])
    expected = np.linalg.lstsq(aug_X, aug_Y, rcond=None)[0]
    np.testing.assert_allclose(problem.classifier(Y), expected, atol=1e-10)


def test_sparse_features_give_the_same_cost():
    X = scipy.sparse.random(50, 8, density=0.3, random_state=0, format="csr")
    Y = np.random.default_rng(2).dirichlet(np.ones(3), size=50)
    blocks = [np.arange(25), np.arange(25, 50)]
    sparse = Problem(X, 3, blocks, lam=1e-2, bias=True)
    dense = Problem(X.toarray(), 3, blocks, lam=1e-2, bias=True)
    assert sparse.objective(Y) == pytest.approx(dense.objective(Y), rel=1e-10)
    fitted = BCFW(max_iter=20, random_state=0).fit(sparse)
    np.testing.assert_array_equal(fitted.predict(X), fitted.predict(X.toarray()))


def test_constraint_violation_measures_each_constraint():
    problem = Problem(np.eye(6), 3, [np.arange(3), np.arange(3, 6)])
    problem.add_bag([0, 1], 1, lower_bound=1.5)
    problem.add_background([3, 4, 5], 2 / 3)
    Y = np.zeros((6, 3))
    Y[:, 0] = 1
    # The bag has 0 + ξ of 1.5; the background 3 of 2: only the bag is violated, by 1.5 − ξ.
    assert problem.constraint_violation(Y, [0.5]) == pytest.approx(1.0)
    Y[0] = [0, 1, 0]
    assert problem.constraint_violation(Y, [0.5]) == pytest.approx(0.0)
    assert problem.constraint_violation(Y, [1.6]) == pytest.approx(0.1)  # ξ above its cap α


def test_non_contiguous_blocks_match_contiguous_ones():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(20, 3))
    perm = rng.permutation(20)
    blocks = [np.sort(perm[:10]), np.sort(perm[10:])]
    problem = Problem(X, 3, blocks, lam=0.1)
    problem.add_bag(blocks[0][:3], 1)
    problem.add_bag(blocks[1][:3], 2)
    fitted = BCFW(max_iter=200, random_state=0).fit(problem)
    assert problem.constraint_violation(fitted.Y_, fitted.xi_) < 1e-9
    np.testing.assert_allclose(fitted.W_, problem.classifier(fitted.Y_), atol=1e-10)


@pytest.mark.parametrize(
    "blocks, message",
    [
        ([np.arange(5)], "features/rows mismatch"),  # X has 6 rows
        ([np.arange(6), np.arange(2)], "features/rows mismatch"),
        ([np.arange(4), np.arange(3, 6)], "features/rows mismatch"),  # 7 ids for 6 rows
        ([np.arange(3), np.array([3, 4, 4])], "overlap"),
        ([np.arange(6), np.array([], dtype=int)], "empty"),
        (np.arange(6), "list of index arrays"),
    ],
)
def test_bad_blocks_are_usage_errors(blocks, message):
    with pytest.raises(UsageError, match=message):
        Problem(np.zeros((6, 2)), 3, blocks)


def test_bad_features_and_parameters_are_usage_errors():
    blocks = [np.arange(4)]
    with pytest.raises(UsageError, match="NaN"):
        Problem(np.full((4, 2), np.nan), 3, blocks)
    with pytest.raises(UsageError, match=r"\[N, d\]"):
        Problem(np.zeros(4), 3, blocks)
    with pytest.raises(UsageError, match="num_classes"):
        Problem(np.zeros((4, 2)), 1, blocks)
    with pytest.raises(UsageError, match="lam"):
        Problem(np.zeros((4, 2)), 3, blocks, lam=-1)
    with pytest.raises(UsageError, match="rank-deficient"):
        Problem(np.zeros((4, 2)), 3, blocks, lam=0.0).objective(np.full((4, 3), 1 / 3))


def test_bad_bags_are_usage_errors():
    problem = Problem(np.zeros((6, 2)), 3, [np.arange(3), np.arange(3, 6)])
    with pytest.raises(UsageError, match="empty"):
        problem.add_bag([], 1)
    with pytest.raises(UsageError, match="infeasible lower_bound"):
        problem.add_bag([0, 1], 1, lower_bound=2.5, slack=False)
    with pytest.raises(UsageError, match="infeasible lower_bound"):
        problem.add_bag([0, 1], 1, lower_bound=1.5, weights=[0.5, 0.5], slack=False)
    with pytest.raises(UsageError, match="span blocks"):
        problem.add_bag([2, 3], 1)
    with pytest.raises(UsageError, match="label"):
        problem.add_bag([0], 3)
    with pytest.raises(UsageError, match="lower_bound"):
        problem.add_bag([0], 1, lower_bound=0)
    with pytest.raises(UsageError, match="weights"):
        problem.add_bag([0, 1], 1, weights=[1.0])
    with pytest.raises(UsageError, match="weights"):
        problem.add_bag([0, 1], 1, weights=[1.0, -1.0])
    with pytest.raises(UsageError, match="repeated"):
        problem.add_bag([0, 0], 1)
    with pytest.raises(UsageError, match=r"\[0, 6\)"):
        problem.add_bag([7], 1)
    with pytest.raises(UsageError, match="fraction"):
        problem.add_background([0, 1], 1.5)
    with pytest.raises(UsageError, match="empty"):
        problem.add_background([], 0.5)
    assert problem.num_bags == 0  # nothing half-added
    problem.add_bag([0, 1], 1, lower_bound=2.0, slack=False)  # exactly reachable is fine
    assert problem.num_bags == 1


def test_jointly_infeasible_hard_constraints_fail_at_fit():
    problem = Problem(np.random.default_rng(0).normal(size=(4, 2)), 3, [np.arange(4)])
    problem.add_bag([0, 1], 1, lower_bound=2.0, slack=False)
    problem.add_bag([1, 2], 2, lower_bound=2.0, slack=False)  # row 1 cannot be 1 and 2
    with pytest.raises(UsageError, match="jointly infeasible"):
        BCFW(max_iter=5).fit(problem)


def test_wrong_shapes_in_objective_are_usage_errors():
    problem = Problem(np.eye(3), 2, [np.arange(3)])
    problem.add_bag([0], 1)
    with pytest.raises(UsageError, match="shape"):
        problem.objective(np.zeros((3, 3)), [0.0])
    with pytest.raises(UsageError, match="one entry per bag"):
        problem.objective(np.zeros((3, 2)), [0.0, 0.0])


def test_a_hard_bound_reached_exactly_is_feasible_despite_rounding():
    problem = Problem(np.random.default_rng(0).normal(size=(10, 2)), 3, [np.arange(10)])
    weights = np.full(10, 0.1)  # sums to 0.9999999999999999 in floating point
    problem.add_bag(np.arange(10), 1, lower_bound=weights.sum(), weights=weights, slack=False)
    fitted = BCFW(max_iter=20, random_state=0).fit(problem)
    np.testing.assert_allclose(fitted.Y_[:, 1], 1.0)
    assert problem.constraint_violation(fitted.Y_, fitted.xi_) < 1e-12
