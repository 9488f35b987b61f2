"""The ICCV 2017 weak-supervision structure (66 movies) from its MATLAB `.mat` files, and array I/O.

Files: bags.mat (bags, track frames), data_block.mat (tracks per movie), track_map.mat (optional,
action track → face track). See reference section 6.5 for their layout; indices there are 1-based.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import scipy.io
import scipy.sparse

from extras.bcfw.pipeline import Bag, constrained_problem, person_weights
from extras.bcfw.problem import Problem
from y8m.errors import UsageError

NUM_CLASSES = 14  # background + 13 actions; MATLAB class 1 (background) is our label 0
ALPHA = 2.0  # init_action_params: alpha
BACKGROUND_FRACTION = 0.4  # init_action_params: alpha_2
NO_PERSON_WEIGHT = 0.1  # the row appended to Z_total for action tracks without a face track
_READ_ERRORS = (ValueError, NotImplementedError, OSError, scipy.io.matlab.MatReadError)


@dataclasses.dataclass(frozen=True)
class Iccv17Structure:
    """Constraint structure of the thesis' action problem, 0-based.

    Attributes:
        track_frames: [N, 2] int64 first and last frame of each person track (movie m's frames
            are offset by 300000·m).
        blocks: track ids of each movie (the BCFW blocks).
        bag_movie: [B] movie of each bag.
        bag_action: [B] action label in 1..13 (0 is the background).
        bag_person: [B] character column of the person assignment, -1 if the bag names nobody.
        bag_frames: [B, 2] first and last frame of each bag.
        track_map: [N] face-track row for each track (the largest value means "no face track"),
            or None when track_map.mat is absent.
    """

    track_frames: np.ndarray
    blocks: tuple[np.ndarray, ...]
    bag_movie: np.ndarray
    bag_action: np.ndarray
    bag_person: np.ndarray
    bag_frames: np.ndarray
    track_map: np.ndarray | None

    num_classes = NUM_CLASSES

    @property
    def num_tracks(self) -> int:
        return self.track_frames.shape[0]

    @property
    def num_bags(self) -> int:
        return self.bag_action.size

    @property
    def num_movies(self) -> int:
        return len(self.blocks)

    def bag_samples(self) -> list[np.ndarray]:
        """Tracks of each bag: the movie's tracks whose frame span overlaps the bag's (strictly,
        as `tracks_in_bag.m` tests it). Some bags hold no track."""
        out = []
        for movie, (first, last) in zip(self.bag_movie, self.bag_frames):
            rows = self.blocks[movie]
            frames = self.track_frames[rows]
            out.append(rows[(frames[:, 0] < last) & (frames[:, 1] > first)])
        return out

    def bags(self) -> tuple[list[Bag], np.ndarray]:
        """The non-empty bags as `Bag`s, and their ids in the .mat order."""
        samples = self.bag_samples()
        kept = np.array([k for k, s in enumerate(samples) if s.size], dtype=np.int64)
        bags = [Bag(samples[k], int(self.bag_action[k]), int(self.bag_person[k])) for k in kept]
        return bags, kept


def load_iccv17(directory: str) -> Iccv17Structure:
    """Reads bags.mat, data_block.mat and (if present) track_map.mat from `directory`.

    As in `joint_optimisation.m`, the bags of bags.mat supersede the older ones of
    data_block.mat, which only contributes the tracks of each movie.
    """
    bags = _loadmat(directory, "bags.mat", ("merge_bag", "movie_bag", "tframes_total"))
    data = _loadmat(directory, "data_block.mat", ("movie_block",))
    track_frames = np.asarray(bags["tframes_total"], dtype=np.int64)
    if track_frames.ndim != 2 or track_frames.shape[1] != 2:
        raise UsageError(f"tframes_total must be [N, 2], got {track_frames.shape}")
    blocks = tuple(np.asarray(b, dtype=np.int64).ravel() - 1 for b in _cells(data["movie_block"]))
    records = np.atleast_1d(bags["merge_bag"])
    action = np.array([int(r.action) for r in records]) - 1
    person = np.array([int(r.people) for r in records]) - 1
    frames = np.array([np.asarray(r.f, dtype=np.int64).ravel()[:2] for r in records])
    bag_movie = np.full(records.size, -1, dtype=np.int64)
    for m, ids in enumerate(_cells(bags["movie_bag"])):
        bag_movie[np.asarray(ids, dtype=np.int64).ravel() - 1] = m
    if (bag_movie < 0).any():
        raise UsageError(f"{(bag_movie < 0).sum()} bags belong to no movie in movie_bag")
    if len(blocks) != len(_cells(bags["movie_bag"])):
        raise UsageError("movie_block and movie_bag list different numbers of movies")
    if (action < 1).any() or (action >= NUM_CLASSES).any():
        raise UsageError(f"bag actions must lie in 2..{NUM_CLASSES} (MATLAB numbering)")
    track_map = None
    if os.path.exists(os.path.join(directory, "track_map.mat")):
        raw = _loadmat(directory, "track_map.mat", ("track_map",))["track_map"]
        track_map = np.asarray(raw, dtype=np.int64).ravel() - 1
        if track_map.size != track_frames.shape[0]:
            raise UsageError(f"track_map has {track_map.size} rows for {len(track_frames)} tracks")
    return Iccv17Structure(track_frames, blocks, bag_movie, action, person, frames, track_map)


def iccv17_problem(
    structure: Iccv17Structure,
    X: np.ndarray,
    person_assignment: np.ndarray | None = None,
    alpha: float = ALPHA,
    background_fraction: float = BACKGROUND_FRACTION,
    no_person_weight: float = NO_PERSON_WEIGHT,
    lam: float = 1e-6,
    kappa: float = 1e-6,
    bias: bool = True,
    bias_value: float = 1.0,
) -> tuple[Problem, np.ndarray]:
    """The thesis' action problem on this structure with features X [N, d].

    Args:
        structure: from `load_iccv17`.
        X: [num_tracks, d] track descriptors (dense or scipy.sparse).
        person_assignment: [R, P] stage-1 assignment of face tracks (Z_total); when given, bags
            that name a person weigh each track by it (the joint model), else all weights are 1
            (the thesis' "no joint model" row).
        alpha, background_fraction, no_person_weight: the thesis code's 2, 0.4 and 0.1.
        lam, kappa, bias, bias_value: as in `Problem`.

    Returns:
        (problem, bag ids): the Problem and, for each of its bags (ξ order), the bag's index in
        bags.mat; empty bags are left out.
    """
    n = X.shape[0] if hasattr(X, "shape") else len(X)
    if n != structure.num_tracks:
        raise UsageError(
            f"features have {n} rows but the structure has {structure.num_tracks} tracks: "
            "features/rows mismatch"
        )
    bags, kept = structure.bags()
    weights = None
    if person_assignment is not None:
        if structure.track_map is None:
            raise UsageError("a person assignment needs track_map.mat beside bags.mat")
        weights = person_weights(bags, person_assignment, structure.track_map, no_person_weight)
    problem = constrained_problem(
        X,
        NUM_CLASSES,
        structure.blocks,
        bags,
        alpha=alpha,
        background_fraction=background_fraction,
        weights=weights,
        lam=lam,
        kappa=kappa,
        bias=bias,
        bias_value=bias_value,
    )
    return problem, kept


def load_array(path: str, what: str = "array"):
    """A matrix from .npy, .npz (first array) or .mat (the first variable; MATLAB sparse stays
    scipy.sparse)."""
    if not os.path.isfile(path):
        raise UsageError(f"{what} file {path!r} does not exist")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npy":
            return np.load(path, allow_pickle=False)
        if ext == ".npz":
            with np.load(path, allow_pickle=False) as z:
                return z[z.files[0]]
        if ext == ".mat":
            content = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
            if not content:
                raise UsageError(f"{what} file {path!r} holds no variable")
            value = next(iter(content.values()))
            return value.tocsr() if scipy.sparse.issparse(value) else np.asarray(value)
    except _READ_ERRORS as err:
        raise UsageError(
            f"cannot read {what} file {path!r}: {err} (MATLAB v7.3 files need re-saving with -v7)"
        ) from None
    raise UsageError(f"{what} file {path!r}: expected .npy, .npz or .mat")


def _loadmat(directory: str, name: str, keys: tuple[str, ...]) -> dict:
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
        raise UsageError(f"{name} not found in {directory!r}: point --data_dir at the ICCV17 files")
    try:
        content = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except _READ_ERRORS as err:
        raise UsageError(f"cannot read {path!r}: {err}") from None
    missing = [k for k in keys if k not in content]
    if missing:
        raise UsageError(f"{path!r} lacks the variables {missing}")
    return content


def _cells(cell) -> list:
    """A MATLAB cell array (squeezed to an object array, or a lone array) as a list."""
    cell = np.asarray(cell, dtype=object) if not isinstance(cell, np.ndarray) else cell
    if cell.dtype == object:
        return list(cell.ravel())
    return [cell]
