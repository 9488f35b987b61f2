"""`y8m bench bcfw`: BCFW against full Frank-Wolfe on the real ICCV17 structure, and scaling in N."""

from __future__ import annotations

import resource
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from extras.bcfw.iccv17 import iccv17_problem, load_iccv17
from extras.bcfw.solvers import BCFW, FrankWolfe
from extras.bcfw.synthetic import planted_features, planted_iccv17_labels, planted_problem


def default_data_dir() -> str | None:
    """The ICCV17 files shipped with the tests, else the shared data beside the repository."""
    repo = Path(__file__).resolve().parents[2]
    for candidate in (
        repo / "tests" / "data" / "iccv17learning",
        repo.parent / "shared" / "data" / "iccv17learning",
    ):
        if (candidate / "bags.mat").is_file():
            return str(candidate)
    return None


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_structure(
    data_dir: str,
    num_features: int = 32,
    separation: float = 3.0,
    tol: float = 1e-3,
    max_time: float = 300.0,
    random_state: int = 0,
    progress: bool = False,
) -> dict:
    """BCFW and full FW on the real 66-movie structure with planted d-dimensional features.

    Returns:
        {"structure": counts, "bcfw": figures, "fw": figures, "peak_rss_mib": float}; each
        solver's figures are steps, steps/s, seconds to reach tol × initial gap (None if not
        reached within max_time), final relative gap, and label accuracy overall, on tracks in
        bags and on action tracks.
    """
    structure = load_iccv17(data_dir)
    rng = np.random.default_rng(random_state)
    labels = planted_iccv17_labels(structure, rng=rng)
    X = planted_features(labels, structure.num_classes, num_features, separation, rng, np.float32)
    problem, _ = iccv17_problem(structure, X)
    in_bag = np.zeros(problem.num_samples, dtype=bool)
    for bag in problem.bags:
        in_bag[bag.samples] = True
    result = {
        "structure": {
            "tracks": problem.num_samples,
            "movies": problem.num_blocks,
            "bags": problem.num_bags,
            "classes": problem.num_classes,
            "features": num_features,
        }
    }
    solvers = {
        "bcfw": BCFW(max_iter=10**9, tol=tol, max_time=max_time, random_state=random_state),
        "fw": FrankWolfe(max_iter=10**9, tol=tol, max_time=max_time, random_state=random_state),
    }
    for name, solver in solvers.items():
        solver.progress = progress
        solver.fit(problem)
        result[name] = _figures(solver, labels, in_bag, tol)
    result["peak_rss_mib"] = round(peak_rss_mib(), 1)
    return result


def bench_scaling(
    sizes: Sequence[int] = (10_000, 100_000, 1_000_000),
    block_size: int = 1000,
    num_features: int = 32,
    num_classes: int = 5,
    steps: int = 200,
    fw_steps: int = 3,
    random_state: int = 0,
) -> list[dict]:
    """Seconds per step of BCFW (one block) and full FW (all blocks) as N grows, blocks fixed.

    Returns:
        One dict per size: n, blocks, bcfw_ms_per_step, fw_ms_per_step, peak_rss_mib.
    """
    rows = []
    for n in sizes:
        problem, _ = planted_problem(
            num_samples=int(n),
            num_features=num_features,
            num_classes=num_classes,
            block_size=block_size,
            dtype=np.float32,
            random_state=random_state,
        )
        # refresh_every=0: no periodic full-gap pass, so only block steps are timed.
        bcfw = BCFW(max_iter=steps, tol=0.0, refresh_every=0, random_state=random_state)
        fw = FrankWolfe(max_iter=fw_steps, tol=0.0, random_state=random_state)
        bcfw.fit(problem)
        fw.fit(problem)
        rows.append(
            {
                "n": int(n),
                "blocks": problem.num_blocks,
                "bcfw_ms_per_step": round(1e3 * bcfw.step_time_ / max(bcfw.n_iter_, 1), 3),
                "fw_ms_per_step": round(1e3 * fw.step_time_ / max(fw.n_iter_, 1), 3),
                "peak_rss_mib": round(peak_rss_mib(), 1),
            }
        )
    return rows


def format_tables(structure: dict | None, scaling: list[dict]) -> str:
    """The human tables of `y8m bench bcfw`."""
    lines = []
    if structure is not None:
        s = structure["structure"]
        lines.append(
            f"ICCV17 structure: {s['tracks']} tracks, {s['movies']} movies, {s['bags']} "
            f"non-empty bags, {s['classes']} classes, planted features d={s['features']}"
        )
        header = (
            f"{'solver':<6} {'steps':>8} {'steps/s':>9} {'setup s':>8} {'t(tol) s':>9} "
            f"{'gap/gap0':>9} {'acc':>6} {'acc bags':>9} {'acc act':>8}"
        )
        lines += [header, "-" * len(header)]
        for name in ("bcfw", "fw"):
            f = structure[name]
            reached = "-" if f["time_to_tol_s"] is None else f"{f['time_to_tol_s']:.1f}"
            lines.append(
                f"{name.upper():<6} {f['steps']:>8} {f['steps_per_s']:>9.1f} "
                f"{f['setup_s']:>8.1f} {reached:>9} {f['gap_rel']:>9.2e} {f['acc']:>6.3f} "
                f"{f['acc_bags']:>9.3f} {f['acc_actions']:>8.3f}"
            )
        lines.append(f"peak RSS: {structure['peak_rss_mib']:.0f} MiB")
        lines.append("")
    if scaling:
        lines.append("time per step, block size fixed (BCFW: one block; FW: every block)")
        header = (
            f"{'N':>9} {'blocks':>7} {'BCFW ms':>9} {'FW ms':>10} {'FW/BCFW':>8} {'RSS MiB':>8}"
        )
        lines += [header, "-" * len(header)]
        for r in scaling:
            ratio = r["fw_ms_per_step"] / max(r["bcfw_ms_per_step"], 1e-9)
            lines.append(
                f"{r['n']:>9} {r['blocks']:>7} {r['bcfw_ms_per_step']:>9.2f} "
                f"{r['fw_ms_per_step']:>10.2f} {ratio:>8.1f} {r['peak_rss_mib']:>8.0f}"
            )
    return "\n".join(lines)


def _figures(solver, labels: np.ndarray, in_bag: np.ndarray, tol: float) -> dict:
    h = solver.history_
    gap0 = solver.initial_gap_
    reached = np.flatnonzero(h["gap"] <= tol * gap0)
    actions = labels > 0
    pred = solver.labels_
    return {
        "steps": int(solver.n_iter_),
        "steps_per_s": round(solver.n_iter_ / max(solver.step_time_, 1e-9), 2),
        "setup_s": round(float(h["time"][0]), 2),
        "time_to_tol_s": round(float(h["time"][reached[0]]), 2) if reached.size else None,
        "gap_rel": float(solver.gap_ / gap0) if gap0 > 0 else 0.0,
        "acc": round(float((pred == labels).mean()), 4),
        "acc_bags": round(float((pred[in_bag] == labels[in_bag]).mean()), 4),
        "acc_actions": round(float((pred[actions] == labels[actions]).mean()), 4),
        "fit_s": round(solver.fit_time_, 2),
    }
