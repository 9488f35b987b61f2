"""`y8m compare A B`: GAP(A) - GAP(B) on the same labelled videos, with a paired bootstrap
interval, and the classes whose AP differs significantly (method: docs/metrics.md)."""

from __future__ import annotations

import csv

import numpy as np

from y8m import significance
from y8m.data import specs
from y8m.errors import UsageError, integer, number
from y8m.fileio import atomic_open
from y8m.predictions import load_predictions

CSV_COLUMNS = (
    "class", "name", "positives", "ap_a", "ap_b", "difference", "low", "high", "p_value",
    "significant",
)  # fmt: skip


def compare(
    a: str | None = None,
    b: str | None = None,
    bootstrap: int = significance.DEFAULT_RESAMPLES,
    seed: int = 0,
    top_k: int = specs.SUBMISSION_TOP_K,
    confidence: float = significance.DEFAULT_CONFIDENCE,
    vocabulary: str | None = None,
    output_file: str | None = None,
    show: int = 10,
    progress: bool = True,
) -> dict:
    """Compare two models' prediction stores on the same labelled videos.

    Prints GAP(A), GAP(B), their difference with a paired bootstrap interval over videos
    (the same resampled videos for both), whether it is significant, and the classes with
    the largest significant AP differences in each direction.

    Args:
        a: prediction store of model A (with labels).
        b: prediction store of model B, on the same videos.
        bootstrap: resamples of the videos (at least 1).
        seed: the resamples' seed; the same seed gives the same intervals.
        top_k: k of GAP@k (and of each class's pooled AP).
        confidence: the intervals' coverage, in (0, 1).
        vocabulary: vocabulary.csv, for class names.
        output_file: write the full per-class table here (CSV, written atomically).
        show: classes printed per direction.
        progress: show a bar over resample chunks.

    Returns:
        dict: `a`, `b` (paths), `model_a`, `model_b`, `num_videos`, `bootstrap`, `seed`,
        `top_k`, `confidence`, `gap_a`, `gap_b`, `difference` (GAP(A) - GAP(B)), `low`,
        `high` (its interval), `p_value` (share of resamples with GAP(A) <= GAP(B)),
        `significant`, `better` ("A", "B" or None), `classes_a_better` and
        `classes_b_better` (the significant classes, largest difference first, each a dict
        of the CSV columns), `output_file` (or None).
    """
    if not a or not b:
        raise UsageError("compare needs two prediction stores: y8m compare A.parquet B.parquet")
    bootstrap = integer("bootstrap", bootstrap, minimum=1)
    seed = integer("seed", seed, minimum=0)
    top_k = integer("top_k", top_k, minimum=1)
    confidence = number("confidence", confidence, above=0, below=1)
    show = integer("show", show, minimum=0)
    names = _read_names(vocabulary) if vocabulary else {}
    store_a, store_b = significance.paired_predictions(
        load_predictions(str(a)), load_predictions(str(b)), str(a), str(b)
    )
    result = _run(store_a, store_b, bootstrap, seed, top_k, confidence, progress)
    rows = _class_rows(result, names)
    if output_file:
        _write_csv(str(output_file), rows)
    summary = _summary(result, str(a), str(b), store_a.model_name, store_b.model_name)
    summary["classes_a_better"], summary["classes_b_better"] = _significant(rows)
    summary["output_file"] = str(output_file) if output_file else None
    _print(summary, show)
    return summary


def _read_names(path: str) -> dict[int, str]:
    from y8m.data.vocabulary import read_vocabulary

    return {index: row["name"] for index, row in read_vocabulary(str(path)).items()}


def _run(store_a, store_b, bootstrap, seed, top_k, confidence, progress):
    from tqdm.auto import tqdm

    with tqdm(total=bootstrap, desc="bootstrap", unit="resample", disable=not progress) as bar:
        return significance.compare_predictions(
            store_a, store_b, top_k=top_k, num_resamples=bootstrap, seed=seed,
            confidence=confidence, on_chunk=bar.update,
        )  # fmt: skip


def _class_rows(result: significance.Comparison, names: dict[int, str]) -> list[dict]:
    """One row per class with positives: its APs, difference, interval and p-value."""
    d = result.ap_difference
    rows = []
    for c in np.flatnonzero(result.positives > 0):
        rows.append(
            {
                "class": int(c),
                "name": names.get(int(c), ""),
                "positives": int(result.positives[c]),
                "ap_a": float(result.ap_a[c]),
                "ap_b": float(result.ap_b[c]),
                "difference": float(d.estimate[c]),
                "low": float(d.low[c]),
                "high": float(d.high[c]),
                "p_value": float(d.p_value[c]),
                "significant": bool(d.significant[c]),
            }
        )
    return rows


def _write_csv(path: str, rows: list[dict]) -> None:
    with atomic_open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
            )


def _significant(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """The significant classes where A is better and where B is, largest difference first."""
    better_a = sorted((r for r in rows if r["significant"] and r["difference"] > 0),
                      key=lambda r: (-r["difference"], r["class"]))  # fmt: skip
    better_b = sorted((r for r in rows if r["significant"] and r["difference"] < 0),
                      key=lambda r: (r["difference"], r["class"]))  # fmt: skip
    return better_a, better_b


def _summary(result: significance.Comparison, path_a, path_b, model_a, model_b) -> dict:
    d = result.difference
    better = None
    if d.significant:
        better = "A" if d.low > 0 else "B"
    return {
        "a": path_a,
        "b": path_b,
        "model_a": model_a,
        "model_b": model_b,
        "num_videos": result.num_videos,
        "bootstrap": result.num_resamples,
        "seed": result.seed,
        "top_k": result.top_k,
        "confidence": d.confidence,
        "gap_a": result.gap_a,
        "gap_b": result.gap_b,
        "difference": float(d.estimate),
        "low": float(d.low),
        "high": float(d.high),
        "p_value": float(d.p_value),
        "significant": bool(d.significant),
        "better": better,
    }


def _print(s: dict, show: int) -> None:
    level = f"{s['confidence'] * 100:g}%"
    width = max(len(str(s["model_a"])), len(str(s["model_b"])))
    for side in ("a", "b"):
        model = str(s[f"model_{side}"])
        print(
            f"{side.upper()}  {model:<{width}}  GAP@{s['top_k']} {s[f'gap_{side}']:.5f}  {s[side]}"
        )
    print(
        f"GAP(A) - GAP(B) = {s['difference']:+.5f}, {level} interval "
        f"[{s['low']:+.5f}, {s['high']:+.5f}] ({s['bootstrap']} paired resamples of "
        f"{s['num_videos']} videos, seed {s['seed']})"
    )
    share = f"GAP(A) <= GAP(B) in {s['p_value']:.1%} of resamples"
    if s["better"]:
        print(f"significant: {s['better']} is better ({share})")
    else:
        print(f"not significant: the interval contains 0 ({share})")
    for side, rows in (("A", s["classes_a_better"]), ("B", s["classes_b_better"])):
        if rows and show:
            print(
                f"classes where {side} is significantly better: {len(rows)} (largest {min(show, len(rows))})"
            )
            _print_classes(rows[:show], level)
    if s["output_file"]:
        print(f"per-class table: {s['output_file']}")


def _print_classes(rows: list[dict], level: str) -> None:
    width = max([len("name"), *(len(r["name"]) for r in rows)])
    print(
        f"  {'class':>5}  {'name':<{width}}  {'AP(A)':>6}  {'AP(B)':>6}  {'diff':>7}  [{level} interval]"
    )
    for r in rows:
        print(
            f"  {r['class']:>5}  {r['name']:<{width}}  {r['ap_a']:>6.4f}  {r['ap_b']:>6.4f}  "
            f"{r['difference']:>+7.4f}  [{r['low']:+.4f}, {r['high']:+.4f}]"
        )
