"""Block-coordinate Frank-Wolfe (thesis Algorithm 1) and the full-batch Frank-Wolfe baseline.

Both keep the classifier W = P·Y up to date with the smart update of eq. 4.7-4.9, so a block step
costs O(N_i·d·K + d²·K), independent of the total number of samples N.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse
from tqdm.auto import tqdm

from extras.bcfw.problem import Problem
from y8m.errors import UsageError


class _Iterate:
    """The current point (Y, ξ), the classifier W = P·Y and the per-block oracles.

    With `pairwise=True` it also keeps, per block, the vertices whose convex combination is the
    block's point (the active set that pairwise steps move weight between).
    """

    def __init__(
        self, problem: Problem, oracle: str, rng: np.random.Generator, pairwise: bool = False
    ) -> None:
        p = problem
        self.problem = p
        self.oracles = p.oracles(oracle)
        self.slots = [p.block_bags(b) for b in range(p.num_blocks)]
        self.Y = np.zeros((p.num_samples, p.num_classes))
        self.xi = np.zeros(p.num_bags)
        self.active: list[_ActiveSet] | None = [] if pairwise else None
        # Like the thesis code, start from the vertex a random linear cost picks in each block;
        # this also proves every block feasible before any work is spent.
        for b, oracle_b in enumerate(self.oracles):
            n_b = oracle_b.num_rows
            S, s = oracle_b(rng.random((n_b, p.num_classes)), rng.random(self.slots[b].size))
            self.Y[p.block_rows(b)] = S
            self.xi[self.slots[b]] = s
            if pairwise:
                self.active.append(_ActiveSet(S, s))
        self.W = p.classifier(self.Y)

    def direction(self, b: int) -> tuple[np.ndarray, np.ndarray, float, float, tuple]:
        """Block b's Frank-Wolfe direction (D, dξ), its gap, its share of f and its gradient.

        The gap g_b = −⟨∇_b f, (D, dξ)⟩ (Algorithm 1's block gap); the share ½⟨Y_b, ∇_b f⟩ sums
        over blocks to the quadratic part of f, since f is a homogeneous quadratic in Y.
        """
        p = self.problem
        rows = p.block_rows(b)
        Yb = self.Y[rows]
        grad = (Yb - p.x_dot(rows, self.W)) / p.num_samples  # (N_b, K), eq. 4.5 with W = P·Y
        xib = self.xi[self.slots[b]]
        slack_grad = 2.0 * p.kappa * xib
        S, s = self.oracles[b](grad, slack_grad)
        D = S - Yb
        dxi = s - xib
        gap = -(np.vdot(grad, D) + np.vdot(slack_grad, dxi))
        share = 0.5 * float(np.vdot(Yb, grad))
        return D, dxi, float(gap), share, (grad, slack_grad, S, s)

    def full_pass(self) -> tuple[np.ndarray, float]:
        """Exact block gaps [num_blocks] and objective at the current point."""
        gaps = np.empty(len(self.oracles))
        quad = 0.0
        for b in range(len(self.oracles)):
            _, _, gaps[b], share, _ = self.direction(b)
            quad += share
        return gaps, quad + self.problem.kappa * float(np.vdot(self.xi, self.xi))

    def step(
        self,
        blocks: list[int],
        D: list[np.ndarray],
        dxi: list[np.ndarray],
        gap: float,
        max_step: float = 1.0,
    ) -> float:
        """Exact line search along the joint direction of `blocks`, then the smart W update."""
        p = self.problem
        v = sum(p.xt_dot(p.block_rows(b), D_b) for b, D_b in zip(blocks, D))  # (d, K)
        u = p.solve(v)  # P·D without forming P: (X̃ᵀX̃ + NλI)⁻¹ X̃ᵀ D
        # Curvature ⟨D, (I − X̃P) D⟩/N + 2κ‖dξ‖², with ⟨D, X̃PD⟩ = ⟨v, u⟩.
        dd = sum(float(np.vdot(D_b, D_b)) for D_b in D)
        dss = sum(float(np.vdot(d, d)) for d in dxi)
        curvature = (dd - float(np.vdot(v, u))) / p.num_samples + 2.0 * p.kappa * dss
        if gap <= 0 or curvature <= 0:
            return 0.0
        gamma = min(max_step, gap / curvature)
        for b, D_b, dxi_b in zip(blocks, D, dxi):
            self.Y[p.block_rows(b)] += gamma * D_b
            self.xi[self.slots[b]] += gamma * dxi_b
        self.W += gamma * u  # eq. 4.9
        return gamma

    def pairwise_step(self, b: int) -> float:
        """One block pairwise step (Osokin et al., 2016): weight moves from the worst active
        vertex to the oracle's vertex. Returns the block's Frank-Wolfe gap before the step."""
        _, _, gap, _, (grad, slack_grad, S, s) = self.direction(b)
        active = self.active[b]
        away, score = active.away(grad, slack_grad)
        A, a, alpha = active.S[away], active.s[away], active.alpha[away]
        pairwise_gap = score - float(np.vdot(grad, S) + np.vdot(slack_grad, s))
        gamma = self.step([b], [S - A], [s - a], pairwise_gap, max_step=alpha)
        if gamma > 0:
            active.move(away, gamma, S, s)
        return gap


class _ActiveSet:
    """The vertices of one block with positive weight, stacked so that one tensordot scores all."""

    def __init__(self, S: np.ndarray, s: np.ndarray) -> None:
        self.S = S[None].copy()  # (slots, N_b, K)
        self.s = s[None].copy()  # (slots, num_slacks)
        self.alpha = np.ones(1)
        self.keys: dict[bytes, int] = {_vertex_key(S, s): 0}

    def __len__(self) -> int:
        return len(self.keys)

    def away(self, grad: np.ndarray, slack_grad: np.ndarray) -> tuple[int, float]:
        """The active vertex with the largest linear cost, and that cost."""
        scores = np.tensordot(self.S, grad, axes=([1, 2], [0, 1])) + self.s @ slack_grad
        scores[self.alpha <= 0] = -np.inf
        j = int(np.argmax(scores))
        return j, float(scores[j])

    def move(self, away: int, gamma: float, S: np.ndarray, s: np.ndarray) -> None:
        """Moves weight gamma from vertex `away` to (S, s), adding (S, s) if it is new."""
        self.alpha[away] -= gamma
        if self.alpha[away] <= 1e-12:  # a drop step: the away vertex leaves the set
            self.alpha[away] = 0.0
            self.keys = {k: j for k, j in self.keys.items() if j != away}
        key = _vertex_key(S, s)
        j = self.keys.get(key)
        if j is None:
            free = np.flatnonzero(self.alpha <= 0)
            if free.size:
                j = int(free[0])
            else:  # grow the buffers by doubling
                j = self.alpha.size
                self.S = np.concatenate([self.S, np.zeros_like(self.S)])
                self.s = np.concatenate([self.s, np.zeros_like(self.s)])
                self.alpha = np.concatenate([self.alpha, np.zeros_like(self.alpha)])
            self.S[j], self.s[j], self.alpha[j] = S, s, 0.0
            self.keys[key] = j
        self.alpha[j] += gamma


def _vertex_key(S: np.ndarray, s: np.ndarray) -> bytes:
    # Rounded so that the same vertex reached from two different costs is recognised; + 0.0
    # turns -0.0 into 0.0.
    return (np.round(S, 9) + 0.0).tobytes() + (np.round(s, 9) + 0.0).tobytes()


class _FrankWolfeBase:
    """Shared parameters, result attributes and prediction of the two solvers."""

    _name = "FW"

    def __init__(
        self,
        max_iter: int,
        tol: float,
        max_time: float | None,
        oracle: str,
        random_state: int | np.random.Generator | None,
        progress: bool,
    ) -> None:
        self.max_iter = max_iter
        self.tol = tol
        self.max_time = max_time
        self.oracle = oracle
        self.random_state = random_state
        self.progress = progress

    def fit(self, problem: Problem):
        """Minimises the problem's relaxed cost from a random vertex.

        Args:
            problem: the `Problem` (features, blocks, constraints); it is not modified.

        Returns:
            self, with Y_, xi_, W_, labels_, objective_, gap_, history_ and the other `*_`
            attributes set.
        """
        if not isinstance(problem, Problem):
            raise UsageError(f"fit expects an extras.bcfw.Problem, got {type(problem).__name__}")
        self._check_params()
        start = time.perf_counter()
        rng = np.random.default_rng(self.random_state)
        it = _Iterate(problem, self.oracle, rng, pairwise=self._pairwise())
        history = {"iteration": [], "time": [], "objective": [], "gap": []}

        def record(n_iter: int, objective: float, gap: float) -> None:
            history["iteration"].append(n_iter)
            history["time"].append(time.perf_counter() - start)
            history["objective"].append(objective)
            history["gap"].append(gap)

        def out_of_time() -> bool:
            return self.max_time is not None and time.perf_counter() - start > self.max_time

        n_iter, converged, step_time = self._run(it, rng, record, out_of_time)
        self.Y_ = it.Y
        self.xi_ = it.xi
        self.W_ = it.W
        self.labels_ = np.argmax(it.Y, axis=1)
        self.objective_ = history["objective"][-1]
        self.gap_ = history["gap"][-1]
        self.initial_gap_ = history["gap"][0]
        self.n_iter_ = n_iter
        self.converged_ = converged
        self.history_ = {k: np.asarray(v) for k, v in history.items()}
        self.fit_time_ = time.perf_counter() - start
        self.step_time_ = step_time
        self.bias_value_ = problem.bias_value if problem.bias else None
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Class scores X̃ W_ [n, K] of new samples X [n, d] with the learned classifier."""
        if not hasattr(self, "W_"):
            raise UsageError(f"this {type(self).__name__} is not fitted yet: call fit first")
        if not scipy.sparse.issparse(X):
            X = np.asarray(X, dtype=np.float64)
        d = self.W_.shape[0] - (self.bias_value_ is not None)
        if X.ndim != 2 or X.shape[1] != d:
            raise UsageError(
                f"X must have shape [n, {d}] like the training features, got {X.shape}"
            )
        scores = np.asarray(X @ self.W_[:d])
        if self.bias_value_ is not None:
            scores += self.bias_value_ * self.W_[d]
        return scores

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Hard labels [n] of new samples: the argmax of `decision_function`."""
        return np.argmax(self.decision_function(X), axis=1)

    def _check_params(self) -> None:
        if int(self.max_iter) != self.max_iter or self.max_iter < 0:
            raise UsageError(f"max_iter must be an integer >= 0, got {self.max_iter!r}")
        if not self.tol >= 0:
            raise UsageError(f"tol must be >= 0, got {self.tol!r}")
        if self.max_time is not None and not self.max_time > 0:
            raise UsageError(f"max_time must be > 0 seconds or None, got {self.max_time!r}")

    def _pairwise(self) -> bool:
        return False

    def _bar(self) -> tqdm:
        # A huge max_iter means "until tol or max_time": a total would only show a silly ETA.
        total = self.max_iter if self.max_iter < 10**7 else None
        return tqdm(total=total, desc=self._name, unit="step", disable=not self.progress)


class BCFW(_FrankWolfeBase):
    """Block-coordinate Frank-Wolfe for discriminative clustering (thesis Algorithm 1).

    Each step samples a block with probability proportional to its last known gap (Osokin et
    al., 2016), computes the block gradient (Y_i − X̃_i W)/N, calls the block's linear oracle,
    takes the exact line-search step and updates W ← W + γ P_i D_i. Every `refresh_every`
    steps a full pass recomputes all block gaps, records the history and tests the stopping
    rule: total gap ≤ tol × initial gap.

    Args:
        max_iter: most block steps.
        tol: stop once the duality gap falls to tol times the gap at the starting point.
        max_time: wall-clock budget in seconds (None: no budget).
        refresh_every: block steps between full-gap refreshes; None means 10 × num_blocks
            (10% overhead), 0 means only at the end (no tolerance test).
        variant: "fw" (Algorithm 1) or "pairwise": block pairwise steps (Osokin et al., 2016)
            that move weight from the worst vertex of the block's active set to the oracle's
            vertex; linear convergence on these polytopes, at the cost of keeping each block's
            active vertices in memory. Use it when a precise optimum matters.
        oracle: "auto" or "lp" (see `BlockOracle`).
        random_state: seed or numpy Generator for the start point and the block sampling.
        progress: show a tqdm bar whose postfix is the relative gap.

    Attributes:
        Y_: [N, K] relaxed assignment. xi_: [num_bags] slacks. W_: [d (+1), K] classifier.
        labels_: [N] rounded assignment (argmax of Y_). objective_, gap_, initial_gap_: floats.
        n_iter_: block steps taken. converged_: whether the tolerance was met.
        history_: dict of arrays iteration/time/objective/gap, one entry per full pass.
        fit_time_: seconds spent in fit. step_time_: seconds spent in block steps alone (no
            setup, no full-gap refresh), so step_time_ / n_iter_ is the cost of one step.

    Reference: thesis eq. 4.5-4.9 and Algorithm 1; Lacoste-Julien et al., 2013.
    """

    _name = "BCFW"

    def __init__(
        self,
        max_iter: int = 100_000,
        tol: float = 1e-4,
        max_time: float | None = None,
        refresh_every: int | None = None,
        variant: str = "fw",
        oracle: str = "auto",
        random_state: int | np.random.Generator | None = None,
        progress: bool = False,
    ) -> None:
        super().__init__(max_iter, tol, max_time, oracle, random_state, progress)
        self.refresh_every = refresh_every
        self.variant = variant

    def _pairwise(self) -> bool:
        if self.variant not in ("fw", "pairwise"):
            raise UsageError(f"variant must be 'fw' or 'pairwise', got {self.variant!r}")
        return self.variant == "pairwise"

    def _run(self, it: _Iterate, rng, record, out_of_time) -> tuple[int, bool, float]:
        num_blocks = len(it.oracles)
        refresh = 10 * num_blocks if self.refresh_every is None else int(self.refresh_every)
        if refresh < 0:
            raise UsageError(f"refresh_every must be >= 0 or None, got {self.refresh_every!r}")
        pairwise = self._pairwise()
        gaps, objective = it.full_pass()
        gap0 = float(gaps.sum())
        record(0, objective, gap0)
        converged = gap0 <= 0
        n_iter = last = 0
        step_time = 0.0
        with self._bar() as bar:
            while not converged and n_iter < self.max_iter and not out_of_time():
                weights = np.maximum(gaps, 0.0)
                total = weights.sum()
                if total > 0:
                    tick = time.perf_counter()
                    # Gap sampling (Osokin et al., 2016): blocks far from optimal go first.
                    cum = np.cumsum(weights)
                    b = int(np.searchsorted(cum, rng.random() * total, side="right"))
                    b = min(b, num_blocks - 1)
                    if pairwise:
                        gaps[b] = it.pairwise_step(b)
                    else:
                        D, dxi, gaps[b], _, _ = it.direction(b)
                        it.step([b], [D], [dxi], gaps[b])
                    step_time += time.perf_counter() - tick
                    n_iter += 1
                    bar.update()
                    if n_iter % 50 == 0:  # between refreshes, the stale block gaps estimate it
                        bar.set_postfix(gap=f"~{gaps.sum() / gap0:.2e}", refresh=False)
                if total <= 0 or (refresh and n_iter - last >= refresh):
                    gaps, objective = it.full_pass()
                    last = n_iter
                    record(n_iter, objective, float(gaps.sum()))
                    bar.set_postfix(gap=f"{gaps.sum() / gap0:.2e}")
                    converged = gaps.sum() <= self.tol * gap0
        if last != n_iter:
            gaps, objective = it.full_pass()
            record(n_iter, objective, float(gaps.sum()))
            converged = gaps.sum() <= self.tol * gap0
        return n_iter, bool(converged), step_time


class FrankWolfe(_FrankWolfeBase):
    """Full-batch Frank-Wolfe on the same problem: every step visits all blocks (the baseline).

    Each step computes the full gradient (O(N·d·K)), calls every block's oracle, and takes the
    exact line-search step along the joint direction. The gap is exact at every step, so the
    history has one entry per step.

    Args:
        max_iter: most Frank-Wolfe steps.
        tol: stop once the duality gap falls to tol times the gap at the starting point.
        max_time: wall-clock budget in seconds (None: no budget).
        oracle: "auto" or "lp" (see `BlockOracle`).
        random_state: seed or numpy Generator for the start point.
        progress: show a tqdm bar whose postfix is the relative gap.

    Attributes: as `BCFW`; step_time_ includes each step's full gradient and oracle pass.
    """

    _name = "FW"

    def __init__(
        self,
        max_iter: int = 1000,
        tol: float = 1e-4,
        max_time: float | None = None,
        oracle: str = "auto",
        random_state: int | np.random.Generator | None = None,
        progress: bool = False,
    ) -> None:
        super().__init__(max_iter, tol, max_time, oracle, random_state, progress)

    def _run(self, it: _Iterate, rng, record, out_of_time) -> tuple[int, bool, float]:
        blocks = list(range(len(it.oracles)))
        gap0 = None
        n_iter = 0
        tick = None
        with self._bar() as bar:
            while True:
                parts = [it.direction(b) for b in blocks]
                gap = float(sum(p[2] for p in parts))
                objective = sum(p[3] for p in parts)
                objective += it.problem.kappa * float(np.vdot(it.xi, it.xi))
                record(n_iter, objective, gap)
                # A step's cost is its line search and update plus the next full gradient pass.
                tick = time.perf_counter() if tick is None else tick
                gap0 = gap if gap0 is None else gap0
                converged = gap <= self.tol * gap0
                if gap0 > 0:
                    bar.set_postfix(gap=f"{gap / gap0:.2e}")
                if converged or n_iter >= self.max_iter or out_of_time():
                    return n_iter, bool(converged), time.perf_counter() - tick
                it.step(blocks, [p[0] for p in parts], [p[1] for p in parts], gap)
                n_iter += 1
                bar.update()
