"""Ensembles of sparse top-K predictions: greedy GAP-driven selection (thesis 3.5.9) and averages."""

from ensembles.averaging import align, average, rank_average, rank_transform, weighted_average
from ensembles.greedy import GreedyEnsembler

__all__ = [
    "GreedyEnsembler",
    "align",
    "average",
    "rank_average",
    "rank_transform",
    "weighted_average",
]
