"""`y8m extras bcfw ...` subcommands (and `y8m bench bcfw`), thin wrappers over the library."""

from __future__ import annotations

import json
import os

import numpy as np

from extras.bcfw import bench as bench_lib
from extras.bcfw.iccv17 import (
    ALPHA,
    BACKGROUND_FRACTION,
    NO_PERSON_WEIGHT,
    iccv17_problem,
    load_array,
    load_iccv17,
)
from extras.bcfw.solvers import BCFW, FrankWolfe
from y8m.errors import UsageError, choice, integer, number
from y8m.fileio import atomic_files, check_files

# What `solve` writes to --output_dir, as one set listed in MANIFEST.
ARRAYS = ("assignments.npy", "labels.npy", "W.npy", "xi.npy", "bag_ids.npy")
SUMMARY = "summary.json"
MANIFEST = "manifest.json"


def read_solution(output_dir: str) -> dict:
    """The arrays and summary a `solve` wrote to OUTPUT_DIR: {"assignments": Y, ..., "summary"}.

    The set is checked against its manifest first, so a reader never mixes two runs.

    Raises:
        UsageError: no manifest, or a file missing or not the one it lists.
    """
    check_files(os.path.join(output_dir, MANIFEST))
    result: dict = {
        name[: -len(".npy")]: np.load(os.path.join(output_dir, name), allow_pickle=False)
        for name in ARRAYS
    }
    with open(os.path.join(output_dir, SUMMARY), encoding="utf-8") as f:
        result["summary"] = json.load(f)
    return result


class Commands:
    """Weakly supervised discriminative clustering with block-coordinate Frank-Wolfe."""

    def solve(
        self,
        features: str = "",
        data_dir: str = "",
        output_dir: str = "bcfw_out",
        person_assignment: str = "",
        alpha: float = ALPHA,
        background_fraction: float = BACKGROUND_FRACTION,
        no_person_weight: float = NO_PERSON_WEIGHT,
        lam: float = 1e-6,
        kappa: float = 1e-6,
        bias: bool = True,
        bias_value: float = 1.0,
        solver: str = "bcfw",
        variant: str = "fw",
        max_iter: int = 100_000,
        tol: float = 1e-3,
        max_time: float = 0.0,
        random_state: int = 0,
    ) -> dict:
        """Assigns actions to the ICCV17 person tracks from script bags; writes Y, labels and W.

        Args:
            features: track features [N, d] as .npy/.npz or .mat (first variable, sparse ok).
            data_dir: folder with bags.mat, data_block.mat, track_map.mat (default: test copy).
            output_dir: gets assignments.npy, labels.npy, W.npy, xi.npy, bag_ids.npy,
                summary.json, replaced as one set and listed in manifest.json.
            person_assignment: stage-1 assignment Z [face tracks, people] (.npy/.mat), optional.
            alpha: lower bound of every bag (the thesis code uses 2).
            background_fraction: least share of the tracks in no bag labelled background (0.4).
            no_person_weight: person weight of tracks without a face track (0.1).
            lam: ridge regulariser λ.
            kappa: slack penalty κ.
            bias: append a constant bias column to the features.
            bias_value: value of that column.
            solver: "bcfw" (block-coordinate) or "fw" (full-batch baseline).
            variant: "fw" (Algorithm 1) or "pairwise" steps, for bcfw only.
            max_iter: most steps.
            tol: stop at this fraction of the initial duality gap.
            max_time: time budget in seconds (0: none).
            random_state: seed of the start point and block sampling.
        """
        if not features:
            raise UsageError("pass --features=X.npy (one row of features per track)")
        choice("solver", solver, ("bcfw", "fw"))
        choice("variant", variant, ("fw", "pairwise"))
        alpha = number("alpha", alpha, 0)
        background_fraction = number("background_fraction", background_fraction, 0, 1)
        no_person_weight = number("no_person_weight", no_person_weight, 0)
        lam, kappa = number("lam", lam, above=0), number("kappa", kappa, above=0)
        bias_value = number("bias_value", bias_value)
        max_iter, tol = integer("max_iter", max_iter, 1), number("tol", tol, 0)
        max_time = number("max_time", max_time, 0)
        random_state = integer("random_state", random_state, 0)
        structure = load_iccv17(_data_dir(data_dir))
        X = load_array(features, "features")
        if getattr(X, "ndim", 2) != 2:
            raise UsageError(f"features must be a 2-D [tracks, d] matrix, got shape {X.shape}")
        Z = load_array(person_assignment, "person assignment") if person_assignment else None
        problem, bag_ids = iccv17_problem(
            structure,
            X,
            person_assignment=Z,
            alpha=alpha,
            background_fraction=background_fraction,
            no_person_weight=no_person_weight,
            lam=lam,
            kappa=kappa,
            bias=bias,
            bias_value=bias_value,
        )
        budget = float(max_time) if max_time else None
        if solver == "bcfw":
            estimator = BCFW(
                max_iter=max_iter,
                tol=tol,
                max_time=budget,
                variant=variant,
                random_state=random_state,
            )
        elif solver == "fw":
            estimator = FrankWolfe(
                max_iter=max_iter, tol=tol, max_time=budget, random_state=random_state
            )
        else:  # pragma: no cover - checked above
            raise UsageError(f"--solver must be 'bcfw' or 'fw', got {solver!r}")
        estimator.progress = True
        estimator.fit(problem)
        summary = {
            "tracks": problem.num_samples,
            "bags": problem.num_bags,
            "classes": problem.num_classes,
            "solver": solver,
            "steps": int(estimator.n_iter_),
            "converged": bool(estimator.converged_),
            "objective": float(estimator.objective_),
            "gap": float(estimator.gap_),
            "initial_gap": float(estimator.initial_gap_),
            "fit_seconds": round(estimator.fit_time_, 3),
            "label_counts": np.bincount(estimator.labels_, minlength=problem.num_classes).tolist(),
        }
        values = [estimator.Y_, estimator.labels_, estimator.W_, estimator.xi_, bag_ids]
        history = {k: v.tolist() for k, v in estimator.history_.items()}
        paths = [os.path.join(output_dir, name) for name in (*ARRAYS, SUMMARY)]
        # One unit: a kill between the renames never leaves arrays of two runs side by side.
        with atomic_files(paths, os.path.join(output_dir, MANIFEST)) as temporaries:
            for path, value in zip(paths, values):
                with open(temporaries[path], "wb") as f:
                    np.save(f, value)
            with open(temporaries[paths[-1]], "w", encoding="utf-8") as f:
                json.dump({**summary, "history": history}, f, indent=1)
        print(
            f"{solver}: {summary['steps']} steps, objective {summary['objective']:.6g}, gap "
            f"{summary['gap'] / max(summary['initial_gap'], 1e-300):.2e} of the initial gap "
            f"({'converged' if summary['converged'] else 'not converged'}); wrote {output_dir}"
        )
        return summary

    def inspect(self, data_dir: str = "") -> dict:
        """Prints the counts of an ICCV17 constraint structure (tracks, movies, bags, classes).

        Args:
            data_dir: folder with bags.mat and data_block.mat (default: the test copy).
        """
        structure = load_iccv17(_data_dir(data_dir))
        samples = structure.bag_samples()
        sizes = np.array([s.size for s in samples])
        in_bags = np.unique(np.concatenate(samples))
        counts = {
            "tracks": structure.num_tracks,
            "movies": structure.num_movies,
            "bags": structure.num_bags,
            "classes": structure.num_classes,
            "empty_bags": int((sizes == 0).sum()),
            "tracks_in_bags": int(in_bags.size),
            "unconstrained_tracks": int(structure.num_tracks - in_bags.size),
            "bags_naming_a_person": int((structure.bag_person >= 0).sum()),
            "median_bag_size": float(np.median(sizes)),
            "max_bag_size": int(sizes.max()),
        }
        for key, value in counts.items():
            print(f"{key:>22}: {value}")
        return counts

    def bench(
        self,
        data_dir: str = "",
        num_features: int = 32,
        separation: float = 3.0,
        tol: float = 1e-3,
        max_time: float = 300.0,
        sizes: str = "10000,100000,1000000",
        block_size: int = 1000,
        steps: int = 200,
        fw_steps: int = 3,
        skip_structure: bool = False,
        random_state: int = 0,
    ) -> None:
        """Benchmarks BCFW against full Frank-Wolfe: real ICCV17 structure, then scaling in N.

        Args:
            data_dir: folder with the ICCV17 .mat files (default: the test copy).
            num_features: dimension d of the planted synthetic features.
            separation: distance between class centres, in noise standard deviations.
            tol: target gap as a fraction of the initial gap (the "time to tol" column).
            max_time: time budget of each solver on the real structure, in seconds.
            sizes: comma-separated N of the scaling table.
            block_size: samples per block in the scaling table.
            steps: BCFW block steps timed per size.
            fw_steps: full Frank-Wolfe steps timed per size.
            skip_structure: only print the scaling table.
            random_state: seed of the synthetic data and the solvers.
        """
        ns = _sizes(sizes)
        num_features = integer("num_features", num_features, 1)
        separation, tol = number("separation", separation, 0), number("tol", tol, 0)
        max_time = number("max_time", max_time, above=0)
        block_size, steps = integer("block_size", block_size, 1), integer("steps", steps, 1)
        fw_steps = integer("fw_steps", fw_steps, 1)
        random_state = integer("random_state", random_state, 0)
        structure = None
        if not skip_structure:
            structure = bench_lib.bench_structure(
                _data_dir(data_dir),
                num_features=num_features,
                separation=separation,
                tol=tol,
                max_time=max_time,
                random_state=random_state,
                progress=True,
            )
        scaling = bench_lib.bench_scaling(
            ns,
            block_size=block_size,
            num_features=num_features,
            steps=steps,
            fw_steps=fw_steps,
            random_state=random_state,
        )
        print(bench_lib.format_tables(structure, scaling))
        print(json.dumps({"bench": "bcfw", "iccv17": structure, "scaling": scaling}))


def _data_dir(data_dir: str) -> str:
    if data_dir:
        if not os.path.isdir(data_dir):
            raise UsageError(f"--data_dir {data_dir!r} is not a folder")
        return data_dir
    found = bench_lib.default_data_dir()
    if found is None:
        raise UsageError("no ICCV17 data found: pass --data_dir=<folder with bags.mat>")
    return found


def _sizes(sizes) -> list[int]:
    # fire turns "1e4,1e5" into a tuple and "10000" into an int; accept all three spellings.
    parts = sizes if isinstance(sizes, list | tuple) else str(sizes).split(",")
    try:
        ns = [int(float(p)) for p in parts if str(p).strip()]
    except ValueError:
        raise UsageError(f"--sizes must be comma-separated integers, got {sizes!r}") from None
    if not ns or min(ns) < 1:
        raise UsageError(f"--sizes must list positive sample counts, got {sizes!r}")
    return ns
