"""BCFW and full Frank-Wolfe: optimum, feasibility, smart W update, planted labels, API."""

from __future__ import annotations

import numpy as np
import pytest

from extras.bcfw import BCFW, FrankWolfe, Problem
from extras.bcfw.synthetic import planted_problem
from y8m.errors import UsageError

from ._reference import design, qp_optimum, random_instance

INSTANCES = {
    "greedy": dict(seed=0),
    "highs": dict(seed=1, overlap=True),
    "weighted-bias": dict(seed=2, weighted=True, bias=True, num_samples=36, num_features=4),
    "small-lambda": dict(seed=3, lam=1e-3, num_classes=4),
}


@pytest.fixture(scope="module", params=sorted(INSTANCES))
def instance(request):
    problem = random_instance(**INSTANCES[request.param])
    return problem, qp_optimum(problem)


def test_pairwise_bcfw_reaches_the_qp_optimum(instance):
    problem, optimum = instance
    fitted = BCFW(variant="pairwise", tol=1e-6, max_iter=20_000, random_state=0).fit(problem)
    assert fitted.converged_
    assert abs(fitted.objective_ - optimum) <= 1e-4 * abs(optimum)
    assert problem.objective(fitted.Y_, fitted.xi_) == pytest.approx(fitted.objective_, 1e-9)
    assert problem.constraint_violation(fitted.Y_, fitted.xi_) < 1e-8


@pytest.mark.parametrize("solver", ["bcfw", "fw"])
def test_frank_wolfe_gap_certifies_the_optimum(instance, solver):
    problem, optimum = instance
    if solver == "bcfw":
        fitted = BCFW(max_iter=400, tol=0, random_state=0).fit(problem)
    else:
        fitted = FrankWolfe(max_iter=100, tol=0, random_state=0).fit(problem)
    # Weak duality: f(Y) − gap ≤ f* ≤ f(Y); the rate is sublinear, so only loosely close.
    assert fitted.objective_ - fitted.gap_ - 1e-9 <= optimum <= fitted.objective_ + 1e-9
    assert fitted.objective_ - optimum <= 0.05 * optimum
    assert problem.constraint_violation(fitted.Y_, fitted.xi_) < 1e-8


@pytest.mark.parametrize("variant", ["fw", "pairwise"])
def test_smart_w_update_equals_recomputing_p_times_y(variant):
    problem = random_instance(4, bias=True, overlap=True)
    fitted = BCFW(variant=variant, max_iter=150, refresh_every=0, random_state=0).fit(problem)
    X = design(problem)
    n, d = X.shape
    recomputed = np.linalg.solve(X.T @ X + n * problem.lam * np.eye(d), X.T @ fitted.Y_)
    np.testing.assert_allclose(fitted.W_, recomputed, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("solver", [BCFW(max_iter=600, random_state=1), FrankWolfe(max_iter=60)])
def test_objective_never_increases(solver):
    fitted = solver.fit(random_instance(5, weighted=True))
    objective = fitted.history_["objective"]
    assert np.all(np.diff(objective) <= 1e-12)
    assert objective[-1] < objective[0]
    assert np.all(fitted.history_["gap"] >= -1e-10)


def test_every_constraint_holds_at_the_returned_point():
    problem = random_instance(6, overlap=True, weighted=True, num_classes=4)
    fitted = BCFW(max_iter=300, random_state=0).fit(problem)
    Y, xi = fitted.Y_, fitted.xi_
    assert Y.min() >= -1e-12
    np.testing.assert_allclose(Y.sum(axis=1), 1.0, atol=1e-10)
    for k, bag in enumerate(problem.bags):
        assert bag.weights @ Y[bag.samples, bag.label] + xi[k] >= bag.lower - 1e-9
        assert 0 <= xi[k] <= (bag.lower if bag.slack else 0.0) + 1e-12
    for bg in problem.backgrounds:
        assert Y[bg.samples, bg.label].sum() >= bg.lower - 1e-9
    np.testing.assert_array_equal(fitted.labels_, Y.argmax(axis=1))


def test_planted_labels_are_mostly_recovered():
    problem, labels = planted_problem(num_samples=800, block_size=100, random_state=0)
    fitted = BCFW(tol=1e-3, max_iter=20_000, random_state=0).fit(problem)
    actions = labels > 0
    assert (fitted.labels_ == labels).mean() >= 0.9
    assert (fitted.labels_[actions] == labels[actions]).mean() >= 0.7
    assert (fitted.predict(problem.X) == labels).mean() >= 0.9


def test_bcfw_and_full_frank_wolfe_agree_on_the_planted_problem():
    problem, _ = planted_problem(num_samples=400, block_size=100, random_state=1)
    bcfw = BCFW(tol=1e-3, random_state=0).fit(problem)
    fw = FrankWolfe(tol=1e-3, random_state=0).fit(problem)
    assert bcfw.converged_ and fw.converged_
    low = max(bcfw.objective_ - bcfw.gap_, fw.objective_ - fw.gap_)
    assert low <= min(bcfw.objective_, fw.objective_) + 1e-12


def test_lp_oracle_mode_reaches_the_same_optimum():
    # The two oracles may break ties differently (a slack of zero cost), so paths differ; the
    # certified intervals [f − gap, f] must still overlap and shrink to the same value.
    problem = random_instance(7, num_samples=18)
    auto = BCFW(variant="pairwise", tol=1e-6, random_state=0).fit(problem)
    lp = BCFW(variant="pairwise", tol=1e-6, oracle="lp", random_state=0).fit(problem)
    assert lp.converged_ and auto.converged_
    assert lp.objective_ == pytest.approx(auto.objective_, rel=1e-4)


def test_same_random_state_same_result_and_history():
    problem = random_instance(8)
    a = BCFW(max_iter=200, random_state=3).fit(problem)
    b = BCFW(max_iter=200, random_state=3).fit(problem)
    np.testing.assert_array_equal(a.Y_, b.Y_)
    np.testing.assert_array_equal(a.history_["iteration"], b.history_["iteration"])
    assert set(a.history_) == {"iteration", "time", "objective", "gap"}


def test_budgets_and_tolerance_stop_the_run():
    problem = random_instance(9)
    short = BCFW(max_iter=7, tol=0, random_state=0).fit(problem)
    assert short.n_iter_ == 7 and not short.converged_
    assert short.history_["iteration"][-1] == 7  # the final point is always measured
    timed = BCFW(max_iter=10**9, tol=0, max_time=0.2, random_state=0).fit(problem)
    assert not timed.converged_ and timed.fit_time_ < 5.0
    loose = BCFW(tol=0.5, random_state=0).fit(problem)
    assert loose.converged_ and loose.gap_ <= 0.5 * loose.initial_gap_
    assert FrankWolfe(max_iter=0).fit(problem).n_iter_ == 0


def test_predict_uses_the_learned_classifier_with_its_bias():
    problem = random_instance(10, bias=True)
    fitted = BCFW(max_iter=100, random_state=0).fit(problem)
    X_new = np.random.default_rng(0).normal(size=(5, 3))
    scores = fitted.decision_function(X_new)
    np.testing.assert_allclose(scores, np.hstack([X_new, np.ones((5, 1))]) @ fitted.W_)
    np.testing.assert_array_equal(fitted.predict(X_new), scores.argmax(axis=1))
    with pytest.raises(UsageError, match="shape"):
        fitted.predict(np.zeros((2, 4)))
    with pytest.raises(UsageError, match="not fitted"):
        BCFW().predict(X_new)


@pytest.mark.parametrize(
    "solver, message",
    [
        (BCFW(variant="away"), "variant"),
        (BCFW(oracle="mosek"), "oracle"),
        (BCFW(max_iter=-1), "max_iter"),
        (BCFW(tol=-1.0), "tol"),
        (BCFW(max_time=0), "max_time"),
        (BCFW(refresh_every=-2), "refresh_every"),
    ],
)
def test_bad_solver_parameters_are_usage_errors(solver, message):
    with pytest.raises(UsageError, match=message):
        solver.fit(random_instance(11))


def test_fit_rejects_anything_but_a_problem():
    with pytest.raises(UsageError, match="Problem"):
        BCFW().fit(np.zeros((3, 3)))


def test_init_stores_parameters_only():
    solver = BCFW(max_iter=5, tol=0.1, random_state=2)
    assert (solver.max_iter, solver.tol, solver.random_state) == (5, 0.1, 2)
    assert not hasattr(solver, "Y_")
    assert isinstance(Problem(np.eye(2), 2, [np.arange(2)]).num_blocks, int)
