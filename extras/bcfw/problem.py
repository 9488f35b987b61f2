"""The weakly supervised discriminative clustering problem: DIFFRAC cost over block-separable constraints.

Thesis chapter 4, eq. 4.1-4.4 (cost), 4.10-4.13 (constraints), 4.16-4.21 (slack, lower bound).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import scipy.linalg
import scipy.sparse

from extras.bcfw.oracle import BlockOracle, LocalConstraint
from y8m.errors import UsageError

_GRAM_CHUNK = 65_536  # rows per chunk when accumulating XᵀX in float64


@dataclasses.dataclass(frozen=True)
class Constraint:
    """One "at least" constraint: Σ_t weights[t] · Y[samples[t], label] (+ ξ) ≥ lower.

    Attributes:
        kind: "bag" (script-mined, one slack ξ each) or "background" (no slack).
        samples: [n] int64 global row ids, unique, all in `block`.
        label: the class the constraint counts.
        lower: the right-hand side (α for a bag, fraction·n for the background).
        weights: [n] float64 non-negative per-sample weights (1 unless coupled to persons).
        block: the block that holds every sample.
        slack: True when the bag has a slack ξ ∈ [0, lower] penalised by κ‖ξ‖².
    """

    kind: str
    samples: np.ndarray
    label: int
    lower: float
    weights: np.ndarray
    block: int
    slack: bool


class Problem:
    """Discriminative clustering of N samples into K classes under block-separable constraints.

    The variable is a relaxed assignment Y [N, K] whose rows lie on the simplex (one label per
    sample, eq. 4.12) plus one slack ξ_k ≥ 0 per bag, in the order bags were added. The cost is
    the DIFFRAC ridge-regression loss with the classifier solved in closed form (eq. 4.1-4.4):

        f(Y, ξ) = ⟨Y, A(X, λ) Y⟩_F + κ‖ξ‖²,   A(X, λ) = (I − X (XᵀX + NλI)⁻¹ Xᵀ) / (2N),

    computed through a d×d Cholesky factor (never an N×N matrix, never an explicit inverse).
    Constraints never span two blocks, which is what makes block-coordinate Frank-Wolfe apply.

    Args:
        X: [N, d] features: a dense array (float32 kept as is, anything else converted to
            float64) or a scipy.sparse matrix (bag-of-words descriptors).
        num_classes: K ≥ 2; label 0 is the background class (class 1 in the thesis' notation).
        blocks: index arrays that partition range(N) (e.g. the tracks of each movie).
        lam: ridge regulariser λ ≥ 0 of eq. 4.1.
        kappa: weight κ ≥ 0 of the L2 slack penalty (eq. 4.16-4.18).
        bias: append a constant column `bias_value` to X (the thesis code uses 100, which leaves
            the bias almost unregularised).
        bias_value: value of that constant column.
    """

    def __init__(
        self,
        X: np.ndarray,
        num_classes: int,
        blocks: Sequence[np.ndarray],
        lam: float = 1e-6,
        kappa: float = 1e-6,
        bias: bool = False,
        bias_value: float = 1.0,
    ) -> None:
        if scipy.sparse.issparse(X):
            X = scipy.sparse.csr_array(X, dtype=np.float64)
        else:
            X = np.asarray(X)
        if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
            raise UsageError(f"features must be a non-empty [N, d] matrix, got shape {X.shape}")
        if X.dtype != np.float32:
            X = X.astype(np.float64, copy=False)
        if not np.isfinite(X.data if scipy.sparse.issparse(X) else X).all():
            raise UsageError("features contain NaN or infinite values: clean them before solving")
        if int(num_classes) != num_classes or num_classes < 2:
            raise UsageError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        if not (np.isfinite(lam) and lam >= 0):
            raise UsageError(f"lam must be a finite number >= 0, got {lam!r}")
        if not (np.isfinite(kappa) and kappa >= 0):
            raise UsageError(f"kappa must be a finite number >= 0, got {kappa!r}")
        self.X = X
        self.num_classes = int(num_classes)
        self.lam = float(lam)
        self.kappa = float(kappa)
        self.bias = bool(bias)
        self.bias_value = float(bias_value)
        self.blocks = _check_partition(blocks, X.shape[0])
        self.block_of = np.empty(X.shape[0], dtype=np.int64)
        for b, rows in enumerate(self.blocks):
            self.block_of[rows] = b
        # Contiguous blocks are read through slices (views) instead of fancy-index copies.
        self._rows = [_as_slice(rows) for rows in self.blocks]
        self.bags: list[Constraint] = []
        self.backgrounds: list[Constraint] = []
        self._factor = None

    @property
    def num_samples(self) -> int:
        return self.X.shape[0]

    @property
    def num_features(self) -> int:
        """Columns of the design matrix, the bias column included."""
        return self.X.shape[1] + int(self.bias)

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    def num_bags(self) -> int:
        return len(self.bags)

    def add_bag(
        self,
        samples: Sequence[int] | np.ndarray,
        label: int,
        lower_bound: float = 1.0,
        weights: Sequence[float] | np.ndarray | None = None,
        slack: bool = True,
    ) -> int:
        """Adds Σ_{t ∈ samples} w_t · Y[t, label] + ξ_k ≥ lower_bound (eq. 4.19-4.21).

        Args:
            samples: row ids of the bag, all in one block.
            label: class the bag names (an action or a person).
            lower_bound: α > 0 (1 in the thesis' basic form, 2 in its action experiments).
            weights: per-sample weights ≥ 0, e.g. the person assignment Z[t, p] that couples
                actions to persons (eq. 4.11); None means all ones.
            slack: give the bag a slack ξ_k ∈ [0, α] penalised by κ ξ_k²; without it the bound
                is hard and must be reachable.

        Returns:
            k, the bag's index into ξ.
        """
        k = len(self.bags)
        what = f"bag {k}"
        rows = self._check_samples(samples, what)
        label = self._check_label(label, what)
        lower = float(lower_bound)
        if not (np.isfinite(lower) and lower > 0):
            raise UsageError(
                f"{what}: lower_bound must be a finite number > 0, got {lower_bound!r}"
            )
        if weights is None:
            w = np.ones(rows.size)
        else:
            w = np.asarray(weights, dtype=np.float64).ravel()
            if w.shape != rows.shape:
                raise UsageError(f"{what}: {w.size} weights for {rows.size} samples; pass one each")
            if not np.isfinite(w).all() or (w < 0).any():
                raise UsageError(f"{what}: weights must be finite and >= 0")
        if not slack and lower > w.sum() * (1 + 1e-12):
            raise UsageError(
                f"{what}: infeasible lower_bound {lower:g}: its samples can supply at most "
                f"{w.sum():g}; lower it or pass slack=True"
            )
        block = int(self.block_of[rows[0]])
        self.bags.append(Constraint("bag", rows, label, lower, w, block, bool(slack)))
        return k

    def add_background(
        self, samples: Sequence[int] | np.ndarray, fraction: float, label: int = 0
    ) -> None:
        """Adds Σ_{t ∈ samples} Y[t, label] ≥ fraction · |samples| (eq. 4.13), without slack.

        Args:
            samples: the block's samples that no bag constrains (all in one block); call once
                per block.
            fraction: the least share in [0, 1] of those samples in the background class.
            label: the background class (0).
        """
        what = f"background constraint {len(self.backgrounds)}"
        rows = self._check_samples(samples, what)
        label = self._check_label(label, what)
        if not (0.0 <= fraction <= 1.0):
            raise UsageError(f"{what}: fraction must lie in [0, 1], got {fraction!r}")
        block = int(self.block_of[rows[0]])
        constraint = Constraint(
            "background", rows, label, float(fraction) * rows.size, np.ones(rows.size), block, False
        )
        self.backgrounds.append(constraint)

    def objective(self, Y: np.ndarray, xi: np.ndarray | None = None) -> float:
        """f(Y, ξ) = ⟨Y, A(X, λ) Y⟩_F + κ‖ξ‖², evaluated in O(N·d·K) memory-free.

        Args:
            Y: [N, K] assignment.
            xi: [num_bags] slacks in the order bags were added (None when there are no bags).

        Returns:
            The cost as a Python float.
        """
        Y = self._check_assignment(Y)
        xi = self._check_slacks(xi)
        M = self.xt_dot(slice(None), Y)  # (d, K) = X̃ᵀY
        quad = (np.vdot(Y, Y) - np.vdot(M, self.solve(M))) / (2 * self.num_samples)
        return float(quad + self.kappa * np.vdot(xi, xi))

    def classifier(self, Y: np.ndarray) -> np.ndarray:
        """The ridge classifier W*(Y) = (X̃ᵀX̃ + NλI)⁻¹ X̃ᵀ Y of eq. 4.2, shape [d (+1), K]."""
        return self.solve(self.xt_dot(slice(None), self._check_assignment(Y)))

    def constraint_violation(self, Y: np.ndarray, xi: np.ndarray | None = None) -> float:
        """Largest violation of any constraint at (Y, ξ); 0 means feasible.

        Covers rows on the simplex, Y ≥ 0, every bag and background bound, and 0 ≤ ξ_k ≤ α_k
        (ξ_k = 0 for bags without slack).
        """
        Y = self._check_assignment(Y)
        xi = self._check_slacks(xi)
        worst = [np.abs(Y.sum(axis=1) - 1).max(), max(0.0, -Y.min())]
        for k, bag in enumerate(self.bags):
            lhs = bag.weights @ Y[bag.samples, bag.label] + xi[k]
            cap = bag.lower if bag.slack else 0.0
            worst += [bag.lower - lhs, -xi[k], xi[k] - cap]
        for bg in self.backgrounds:
            worst.append(bg.lower - Y[bg.samples, bg.label].sum())
        return float(max(0.0, *worst))

    def block_bags(self, b: int) -> np.ndarray:
        """Indices into ξ of the bags of block b, in the order they were added."""
        return np.array([k for k, bag in enumerate(self.bags) if bag.block == b], dtype=np.int64)

    def oracles(self, mode: str = "auto") -> list[BlockOracle]:
        """One linear minimisation oracle per block (see `BlockOracle`)."""
        local = np.full(self.num_samples, -1, dtype=np.int64)
        per_block: list[list[tuple[Constraint, int]]] = [[] for _ in self.blocks]
        slots: list[int] = [0] * self.num_blocks
        for bag in self.bags:
            per_block[bag.block].append((bag, slots[bag.block]))
            slots[bag.block] += 1
        for bg in self.backgrounds:
            per_block[bg.block].append((bg, -1))
        oracles = []
        for b, rows in enumerate(self.blocks):
            local[rows] = np.arange(rows.size)
            constraints = [
                LocalConstraint(
                    rows=local[c.samples],
                    label=c.label,
                    weights=c.weights,
                    lower=c.lower,
                    slot=slot,
                    slack_cap=c.lower if c.slack else 0.0,
                )
                for c, slot in per_block[b]
            ]
            oracles.append(
                BlockOracle(rows.size, self.num_classes, constraints, slots[b], mode=mode, block=b)
            )
        return oracles

    def x_dot(self, rows: slice | np.ndarray, W: np.ndarray) -> np.ndarray:
        """X̃[rows] @ W, shape [n, K], without materialising the bias column."""
        d = self.X.shape[1]
        out = self.X[rows] @ W[:d]
        if self.bias:
            out += self.bias_value * W[d]
        return out

    def xt_dot(self, rows: slice | np.ndarray, D: np.ndarray) -> np.ndarray:
        """X̃[rows]ᵀ @ D, shape [d (+1), K]."""
        out = self.X[rows].T @ D
        if self.bias:
            out = np.vstack([out, self.bias_value * D.sum(axis=0, keepdims=True)])
        return out

    def solve(self, V: np.ndarray) -> np.ndarray:
        """(X̃ᵀX̃ + NλI)⁻¹ V by the cached Cholesky factor, shape of V."""
        if self._factor is None:
            self._factor = self._cholesky()
        return scipy.linalg.cho_solve(self._factor, V, check_finite=False)

    def block_rows(self, b: int) -> slice | np.ndarray:
        """Block b's rows as a slice when contiguous, else as an index array."""
        return self._rows[b]

    def _cholesky(self):
        n, d = self.X.shape
        gram = np.zeros((d, d))
        sums = np.zeros(d)
        for start in range(0, n, _GRAM_CHUNK):
            chunk = self.X[start : start + _GRAM_CHUNK].astype(np.float64, copy=False)
            block_gram = chunk.T @ chunk
            gram += block_gram.toarray() if scipy.sparse.issparse(block_gram) else block_gram
            sums += np.asarray(chunk.sum(axis=0)).ravel()
        if self.bias:
            s = self.bias_value
            top = np.hstack([gram, s * sums[:, None]])
            gram = np.vstack([top, np.append(s * sums, s * s * n)])
        gram[np.diag_indices_from(gram)] += n * self.lam
        try:
            return scipy.linalg.cho_factor(gram, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            raise UsageError(
                "XᵀX + NλI is singular: the features are rank-deficient; use lam > 0"
            ) from None

    def _check_samples(self, samples, what: str) -> np.ndarray:
        rows = np.asarray(samples).ravel()
        if rows.size == 0:
            raise UsageError(f"{what}: empty sample set; drop it or give it samples")
        if not np.issubdtype(rows.dtype, np.integer):
            raise UsageError(f"{what}: samples must be integer row ids, got dtype {rows.dtype}")
        rows = rows.astype(np.int64)
        if rows.min() < 0 or rows.max() >= self.num_samples:
            raise UsageError(f"{what}: sample ids must lie in [0, {self.num_samples})")
        if np.unique(rows).size != rows.size:
            raise UsageError(f"{what}: repeated sample ids; list each sample once")
        blocks = np.unique(self.block_of[rows])
        if blocks.size > 1:
            raise UsageError(
                f"{what}: samples span blocks {blocks[:4].tolist()}; a constraint must stay "
                "within one block (split it per block)"
            )
        return rows

    def _check_label(self, label, what: str) -> int:
        if int(label) != label or not 0 <= label < self.num_classes:
            raise UsageError(f"{what}: label must be an integer in [0, {self.num_classes})")
        return int(label)

    def _check_assignment(self, Y) -> np.ndarray:
        Y = np.asarray(Y, dtype=np.float64)
        if Y.shape != (self.num_samples, self.num_classes):
            raise UsageError(
                f"Y must have shape ({self.num_samples}, {self.num_classes}), got {Y.shape}"
            )
        return Y

    def _check_slacks(self, xi) -> np.ndarray:
        xi = np.zeros(0) if xi is None else np.asarray(xi, dtype=np.float64).ravel()
        if xi.shape != (self.num_bags,):
            raise UsageError(f"xi must have one entry per bag ({self.num_bags}), got {xi.size}")
        return xi


def _check_partition(blocks: Sequence[np.ndarray], n: int) -> tuple[np.ndarray, ...]:
    if isinstance(blocks, np.ndarray) and blocks.ndim == 1 and blocks.dtype != object:
        raise UsageError("blocks must be a list of index arrays, not one flat array")
    out = []
    for b, rows in enumerate(blocks):
        rows = np.asarray(rows).ravel()
        if rows.size == 0:
            raise UsageError(f"block {b} is empty; drop it")
        if not np.issubdtype(rows.dtype, np.integer):
            raise UsageError(f"block {b}: row ids must be integers, got dtype {rows.dtype}")
        out.append(rows.astype(np.int64))
    if not out:
        raise UsageError("no blocks given: pass at least one index array")
    allrows = np.concatenate(out)
    if allrows.size != n or allrows.min() < 0 or allrows.max() >= n:
        raise UsageError(
            f"blocks must partition the {n} feature rows exactly, they list {allrows.size} ids "
            f"in [{allrows.min()}, {allrows.max()}]: features/rows mismatch?"
        )
    if np.bincount(allrows, minlength=n).max() > 1:
        raise UsageError("blocks overlap: every row must belong to exactly one block")
    return tuple(out)


def _as_slice(rows: np.ndarray) -> slice | np.ndarray:
    start = int(rows[0])
    if np.array_equal(rows, np.arange(start, start + rows.size)):
        return slice(start, start + rows.size)
    return rows
