"""Problems with planted labels: features clustered by a hidden label, bags that tell the truth."""

from __future__ import annotations

import numpy as np

from extras.bcfw.iccv17 import Iccv17Structure
from extras.bcfw.pipeline import Bag, constrained_problem
from extras.bcfw.problem import Problem


def planted_features(
    labels: np.ndarray,
    num_classes: int,
    num_features: int,
    separation: float = 3.0,
    rng: np.random.Generator | None = None,
    dtype=np.float64,
) -> np.ndarray:
    """Features X [N, d]: a random centre per class plus unit Gaussian noise.

    Centres are drawn N(0, s²/2 · I) so that two centres lie about `separation` noise standard
    deviations apart along the line joining them.
    """
    rng = np.random.default_rng(rng)
    centres = rng.normal(scale=separation / np.sqrt(2), size=(num_classes, num_features))
    X = rng.standard_normal(size=(labels.size, num_features), dtype=np.float64).astype(dtype)
    X += centres[labels].astype(dtype)
    return X


def planted_problem(
    num_samples: int = 2000,
    num_features: int = 16,
    num_classes: int = 5,
    block_size: int = 200,
    bag_size: int = 4,
    bags_per_block: int = 10,
    alpha: float = 1.0,
    background_prob: float = 0.8,
    background_fraction: float = 0.5,
    separation: float = 3.0,
    lam: float = 1e-6,
    kappa: float | None = None,
    bias: bool = True,
    dtype=np.float64,
    random_state=None,
) -> tuple[Problem, np.ndarray]:
    """A problem whose hidden labels the constraints and features both point to.

    Samples come in blocks of `block_size`; each is background with probability
    `background_prob`, else a uniform action. In every block, `bags_per_block` disjoint runs of
    `bag_size` consecutive samples become bags naming an action one of their samples has, like
    a script line aligned to a time interval; the block's other samples get the background
    constraint.

    Args:
        kappa: slack weight; None picks 10/N so that emptying a bag's slack weighs about as much
            as relabelling a few samples (the cost per sample scales as 1/N).
        other args: sizes and generator settings as named.

    Returns:
        (problem, labels [N] int64).
    """
    rng = np.random.default_rng(random_state)
    n = int(num_samples)
    actions = rng.integers(1, num_classes, size=n)
    labels = np.where(rng.random(n) < background_prob, 0, actions)
    X = planted_features(labels, num_classes, num_features, separation, rng, dtype)
    blocks = [np.arange(s, min(s + block_size, n)) for s in range(0, n, block_size)]
    bags = []
    for rows in blocks:
        runs = [rows[s : s + bag_size] for s in range(0, rows.size - bag_size + 1, bag_size)]
        runs = [r for r in runs if (labels[r] > 0).any()]
        for k in rng.permutation(len(runs))[:bags_per_block]:
            named = labels[runs[k]][labels[runs[k]] > 0]
            bags.append(Bag(runs[k], int(rng.choice(named))))
    problem = constrained_problem(
        X,
        num_classes,
        blocks,
        bags,
        alpha=alpha,
        background_fraction=background_fraction,
        lam=lam,
        kappa=10.0 / n if kappa is None else kappa,
        bias=bias,
    )
    return problem, labels


def planted_iccv17_labels(
    structure: Iccv17Structure,
    action_prob: float = 0.5,
    noise_prob: float = 0.05,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Hidden labels [N] consistent with the real bags: a track in bags does the action of one
    of its bags with probability `action_prob` (else background); a track in no bag does a
    random action with probability `noise_prob` (else background)."""
    rng = np.random.default_rng(rng)
    n = structure.num_tracks
    labels = np.where(rng.random(n) < noise_prob, rng.integers(1, structure.num_classes, size=n), 0)
    candidate = np.zeros(n, dtype=np.int64)
    seen = np.zeros(n, dtype=np.int64)
    for samples, action in zip(structure.bag_samples(), structure.bag_action):
        # Reservoir sampling of one bag per track: each of its bags is equally likely.
        seen[samples] += 1
        replace = rng.random(samples.size) < 1.0 / seen[samples]
        candidate[samples[replace]] = action
    in_bag = seen > 0
    labels[in_bag] = np.where(rng.random(in_bag.sum()) < action_prob, candidate[in_bag], 0)
    return labels
