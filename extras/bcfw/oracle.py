"""Linear minimisation oracle over one block: argmin ⟨G, S⟩ + ⟨g, s⟩ over the block's polytope.

Rows no constraint touches take their cheapest label (closed form); a constraint sharing no row
with another one is a fractional covering knapsack, solved exactly by a greedy pass; constraints
that share rows form one LP solved by scipy's HiGHS.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.optimize
import scipy.sparse

from y8m.errors import UsageError


@dataclasses.dataclass(frozen=True)
class LocalConstraint:
    """Σ_t weights[t] · S[rows[t], label] + s[slot] ≥ lower, with rows local to the block.

    Attributes:
        rows: [n] int64 row ids within the block.
        label: counted class.
        weights: [n] float64 ≥ 0.
        lower: right-hand side.
        slot: index of the constraint's slack in the block's slack vector, -1 for none.
        slack_cap: upper bound of that slack (0 for a hard constraint).
    """

    rows: np.ndarray
    label: int
    weights: np.ndarray
    lower: float
    slot: int
    slack_cap: float


class BlockOracle:
    """The block LMO: S ≥ 0 with one label per row, plus the block's "at least" constraints.

    Args:
        num_rows: rows in the block.
        num_classes: K.
        constraints: the block's constraints, rows local to the block.
        num_slacks: length of the block's slack vector.
        mode: "auto" (closed form and greedy where exact, HiGHS for coupled constraints) or "lp"
            (every constrained row in one HiGHS LP; the closed form stays for free rows).
        block: block id, for error messages.
    """

    def __init__(
        self,
        num_rows: int,
        num_classes: int,
        constraints: list[LocalConstraint],
        num_slacks: int,
        mode: str = "auto",
        block: int = 0,
    ) -> None:
        if mode not in ("auto", "lp"):
            raise UsageError(f"oracle mode must be 'auto' or 'lp', got {mode!r}")
        self.num_rows = num_rows
        self.num_classes = num_classes
        self.num_slacks = num_slacks
        self.block = block
        constrained = np.zeros(num_rows, dtype=bool)
        for c in constraints:
            constrained[c.rows] = True
        self.free_rows = np.flatnonzero(~constrained)
        if mode == "lp":
            groups = [constraints] if constraints else []
        else:
            groups = _components(constraints, num_rows)
        self.greedy = [g[0] for g in groups if len(g) == 1 and mode == "auto"]
        coupled = [c for g in groups if len(g) > 1 or mode == "lp" for c in g]
        self.lp = _CoupledLP(coupled, num_classes, block) if coupled else None

    def __call__(self, grad: np.ndarray, slack_grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Returns the minimiser (S [n, K], s [num_slacks]) of ⟨grad, S⟩ + ⟨slack_grad, s⟩."""
        S = np.zeros((self.num_rows, self.num_classes))
        s = np.zeros(self.num_slacks)
        free = self.free_rows
        if free.size:
            S[free, np.argmin(grad[free], axis=1)] = 1.0
        for c in self.greedy:
            _greedy_cover(c, grad, slack_grad, S, s, self.block)
        if self.lp is not None:
            self.lp.solve(grad, slack_grad, S, s)
        return S, s


class _CoupledLP:
    """Constraints that share rows, as one LP over their rows and slacks.

    A row keeps one variable per label its constraints count, plus one "other" variable that
    stands for its cheapest remaining label: mass on any other label can move there at no loss,
    so the LP stays exact with about 2-3 variables per row instead of K.
    """

    def __init__(self, constraints: list[LocalConstraint], num_classes: int, block: int) -> None:
        K = num_classes
        self.block = block
        self.rows = np.unique(np.concatenate([c.rows for c in constraints]))
        n = self.rows.size
        pos = np.full(self.rows.max() + 1, -1, dtype=np.int64)
        pos[self.rows] = np.arange(n)
        counted = np.zeros((n, K), dtype=bool)  # (n, K): labels each row's constraints count
        for c in constraints:
            counted[pos[c.rows], c.label] = True
        self.counted = counted
        self.var_row, self.var_label = np.nonzero(counted)  # explicit variables, row-major
        var_of = np.full((n, K), -1, dtype=np.int64)
        var_of[self.var_row, self.var_label] = np.arange(self.var_row.size)
        self.other_row = np.flatnonzero(~counted.all(axis=1))
        num_explicit = self.var_row.size
        self.num_y = num_explicit + self.other_row.size
        with_slack = [c for c in constraints if c.slack_cap > 0]
        self.slots = np.array([c.slot for c in with_slack], dtype=np.int64)
        num_vars = self.num_y + len(with_slack)
        slack_col = {id(c): self.num_y + j for j, c in enumerate(with_slack)}
        cols, vals, row_ids = [], [], []
        for i, c in enumerate(constraints):
            cols.append(var_of[pos[c.rows], c.label])
            vals.append(-c.weights)
            row_ids.append(np.full(c.rows.size, i))
            if id(c) in slack_col:
                cols.append(np.array([slack_col[id(c)]]))
                vals.append(np.array([-1.0]))
                row_ids.append(np.array([i]))
        self.A_ub = scipy.sparse.csr_array(
            (np.concatenate(vals), (np.concatenate(row_ids), np.concatenate(cols))),
            shape=(len(constraints), num_vars),
        )
        self.b_ub = -np.array([c.lower for c in constraints])
        # One label per row: each row's variables sum to one.
        eq_rows = np.concatenate([self.var_row, self.other_row])
        self.A_eq = scipy.sparse.csr_array(
            (np.ones(self.num_y), (eq_rows, np.arange(self.num_y))), shape=(n, num_vars)
        )
        self.b_eq = np.ones(n)
        upper = np.concatenate([np.full(self.num_y, np.inf), [c.slack_cap for c in with_slack]])
        self.bounds = np.column_stack([np.zeros(num_vars), upper])

    def solve(self, grad: np.ndarray, slack_grad: np.ndarray, S: np.ndarray, s: np.ndarray) -> None:
        G = grad[self.rows]
        others = np.where(self.counted, np.inf, G)[self.other_row]
        other_label = np.argmin(others, axis=1)
        cost = np.concatenate(
            [
                G[self.var_row, self.var_label],
                others[np.arange(self.other_row.size), other_label],
                slack_grad[self.slots],
            ]
        )
        res = scipy.optimize.linprog(
            cost,
            A_ub=self.A_ub,
            b_ub=self.b_ub,
            A_eq=self.A_eq,
            b_eq=self.b_eq,
            bounds=self.bounds,
            method="highs",
        )
        if res.status == 2:
            raise UsageError(
                f"block {self.block}: its constraints are jointly infeasible (hard bags or "
                "background fractions that cannot all hold); lower them or allow slack"
            )
        if res.status != 0:
            raise RuntimeError(f"block {self.block}: HiGHS failed: {res.message}")
        x = np.maximum(res.x, 0.0)  # HiGHS may return -1e-17 for a zero
        num_explicit = self.var_row.size
        S[self.rows[self.var_row], self.var_label] = x[:num_explicit]
        S[self.rows[self.other_row], other_label] += x[num_explicit : self.num_y]
        s[self.slots] = x[self.num_y :]


def _greedy_cover(
    c: LocalConstraint,
    grad: np.ndarray,
    slack_grad: np.ndarray,
    S: np.ndarray,
    s: np.ndarray,
    block: int,
) -> None:
    """Exact LMO for one constraint whose rows no other constraint touches.

    Row t puts x_t on the counted label and 1 − x_t on its cheapest other label, so the LP is
    min Σ c_t x_t + g ξ  s.t. Σ w_t x_t + ξ ≥ lower, 0 ≤ x ≤ 1, 0 ≤ ξ ≤ cap: a fractional
    covering knapsack, solved by taking the cheapest units first (at most one fractional item).
    """
    G = grad[c.rows]
    on = G[:, c.label]
    others = G.copy()
    others[:, c.label] = np.inf
    alt = np.argmin(others, axis=1)
    cost = on - others[np.arange(c.rows.size), alt]
    x = (cost < 0).astype(np.float64)  # units with negative cost are taken in full
    need = c.lower - c.weights @ x
    xi = 0.0
    if need > 0:
        cand = np.flatnonzero((x == 0) & (c.weights > 0))
        ratio = cost[cand] / c.weights[cand]
        cap = c.weights[cand]
        if c.slot >= 0 and c.slack_cap > 0:
            ratio = np.append(ratio, slack_grad[c.slot])
            cap = np.append(cap, c.slack_cap)
        order = np.argsort(ratio, kind="stable")
        filled = np.cumsum(cap[order])
        k = int(np.searchsorted(filled, need))
        if k == order.size and order.size and need <= filled[-1] * (1 + 1e-9):
            k -= 1  # a bound the samples reach exactly, up to rounding in the sum
        if k == order.size:
            raise UsageError(
                f"block {block}: a hard constraint on label {c.label} needs {c.lower:g} but its "
                f"samples supply {filled[-1] if filled.size else 0:g}; lower it or allow slack"
            )
        take = np.zeros(order.size)
        take[order[:k]] = 1.0
        take[order[k]] = min(1.0, (need - (filled[k - 1] if k else 0.0)) / cap[order[k]])
        if cap.size > cand.size:  # the last item is the slack
            xi = take[-1] * c.slack_cap
            take = take[:-1]
        x[cand] = take
    rows = c.rows
    S[rows, alt] += 1.0 - x
    S[rows, c.label] += x
    if c.slot >= 0:
        s[c.slot] = xi


def _components(constraints: list[LocalConstraint], num_rows: int) -> list[list]:
    """Groups constraints into connected components of the "shares a row" relation."""
    parent = list(range(len(constraints)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner = np.full(num_rows, -1, dtype=np.int64)
    for i, c in enumerate(constraints):
        previous = owner[c.rows]
        for j in np.unique(previous[previous >= 0]):
            parent[find(int(j))] = find(i)
        owner[c.rows] = i
    groups: dict[int, list] = {}
    for i, c in enumerate(constraints):
        groups.setdefault(find(i), []).append(c)
    return list(groups.values())
