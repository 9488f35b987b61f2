"""Large-scale discriminative clustering with block-coordinate Frank-Wolfe (thesis chapter 4)."""

from extras.bcfw.iccv17 import Iccv17Structure, iccv17_problem, load_iccv17
from extras.bcfw.pipeline import Bag, Movie, constrained_problem, fit_names, fit_two_stage
from extras.bcfw.problem import Constraint, Problem
from extras.bcfw.solvers import BCFW, FrankWolfe

__all__ = [
    "BCFW",
    "Bag",
    "Constraint",
    "FrankWolfe",
    "Iccv17Structure",
    "Movie",
    "Problem",
    "constrained_problem",
    "fit_names",
    "fit_two_stage",
    "iccv17_problem",
    "load_iccv17",
]
