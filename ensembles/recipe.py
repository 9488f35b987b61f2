"""Ensemble recipes (JSON that `y8m ensemble --recipe` replays), the selection table and the plot."""

from __future__ import annotations

import datetime
import json

from y8m.errors import UsageError
from y8m.fileio import atomic_open, atomic_path

RECIPE_FORMAT = "y8m.ensemble_recipe"
RECIPE_VERSION = 1
METHODS = ("greedy", "mean", "weighted", "rank")
# Sizes are decimal MB, as `y8m models` prints them: a 1024 MB budget (1.024e9 bytes) stays
# inside the 2018 rule's 1 GB whichever way it is read.
MB = 1e6


def save_recipe(path: str, recipe: dict) -> str:
    """Writes `recipe` (see `make_recipe`) as indented JSON, atomically; returns the path."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(recipe, f, indent=2, sort_keys=False)
        f.write("\n")
    return path


def make_recipe(
    *,
    method: str,
    weights: dict[str, float],
    top_k: int,
    version: int,
    validation: str | None,
    test: str | None,
    history: list[dict] | None = None,
    best_step: int | None = None,
    validation_gap: float | None = None,
    single_gaps: dict[str, float] | None = None,
    options: dict | None = None,
    sizes: dict[str, dict] | None = None,
    max_mb: float | None = None,
    stopped: dict | None = None,
) -> dict:
    """The replayable description of an ensemble.

    Args:
        method: "greedy", "mean", "weighted" or "rank" ("rank" replays as a rank average).
        weights: model name -> weight (summing to 1).
        top_k: k of GAP@k and the pairs per video in the submission.
        version: Kaggle format year.
        validation, test: the input globs.
        history: greedy steps (step, model, weight, gap, bytes, gain, gain_low, gain_high).
        best_step: the greedy step the weights come from.
        validation_gap: GAP of the ensemble on validation.
        single_gaps: model -> validation GAP alone.
        options: other settings (greedy steps, replacement).
        sizes: model -> {"precision", "bytes"} (from the stores' metadata, where recorded);
            the recipe keeps the chosen models' and their total MB when all are known.
        max_mb: the size budget of the selection (None: none).
        stopped: the greedy step `--min_gain` refused (not taken), with its `reason`.
    """
    chosen = {n: dict(sizes[n]) for n in weights if sizes and n in sizes}
    known = len(chosen) == len(weights)
    return {
        "format": RECIPE_FORMAT,
        "format_version": RECIPE_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "method": method,
        "models": list(weights),
        "weights": weights,
        "top_k": int(top_k),
        "version": int(version),
        "validation": validation,
        "test": test,
        "validation_gap": validation_gap,
        "best_step": best_step,
        "history": history or [],
        "single_model_gaps": single_gaps or {},
        "options": options or {},
        "model_sizes": chosen,
        "total_mb": sum(s["bytes"] for s in chosen.values()) / MB if known else None,
        "max_mb": max_mb,
        "stopped": stopped,
    }


def load_recipe(path: str) -> dict:
    """Reads and checks a recipe written by `save_recipe`.

    Raises:
        UsageError: missing file, not JSON, or not a y8m ensemble recipe.
    """
    try:
        with open(path, encoding="utf-8") as f:
            recipe = json.load(f)
    except FileNotFoundError:
        raise UsageError(
            f"no such recipe {path!r}: pass the .recipe.json an ensemble wrote"
        ) from None
    except json.JSONDecodeError as e:
        raise UsageError(f"recipe {path} is not valid JSON ({e})") from None
    if not isinstance(recipe, dict) or recipe.get("format") != RECIPE_FORMAT:
        raise UsageError(f"{path} is not a y8m ensemble recipe (format {RECIPE_FORMAT!r})")
    if recipe.get("method") not in METHODS or not recipe.get("weights"):
        raise UsageError(f"recipe {path} has no usable method/weights")
    return recipe


def format_table(
    history: list[dict],
    best_step: int | None = None,
    stopped: dict | None = None,
    confidence: float = 0.95,
) -> str:
    """The selection table: step, model, weight, validation GAP, where the steps record it the
    gain with its interval, and where they record bytes the ensemble's MB (the used step is
    marked *). A step `--min_gain` refused ends the table, marked as not taken."""
    rows = history + ([stopped] if stopped else [])
    width = max([len("model"), *(len(h["model"]) for h in rows)])
    sized = _sized(history)
    gained = any(h.get("gain") is not None for h in rows)
    gain_head = f"gain [{confidence * 100:g}% interval]" if _has_intervals(rows) else "gain"
    gain_width = max([len(gain_head), *(len(_gain_text(h)) for h in rows)])
    lines = [
        f"{'step':>4}  {'model':<{width}}  {'weight':>6}  {'GAP':>7}"
        + (f"  {gain_head:<{gain_width}}" if gained else "")
        + (f"  {'MB':>8}" if sized else "")
    ]
    for h in rows:
        taken = h is not stopped
        mark = " *" if taken and h["step"] == best_step else ""
        weight = f"{h['weight']:>6.3f}" if taken else f"{'-':>6}"
        gain = f"  {_gain_text(h):<{gain_width}}" if gained else ""
        size = (f"  {h['bytes'] / MB:>8.1f}" if taken else f"  {'-':>8}") if sized else ""
        note = "" if taken else "  not taken: " + str(stopped.get("reason", "min_gain"))
        lines.append(
            f"{h['step']:>4}  {h['model']:<{width}}  {weight}  {h['gap']:>7.4f}{gain}{size}{mark}"
            f"{note}"
        )
    return "\n".join(line.rstrip() for line in lines)


def _gain_text(h: dict) -> str:
    """`+0.0034 [+0.0012, +0.0056]`, `+0.0034` without an interval, "" at step 1."""
    if h.get("gain") is None:
        return ""
    text = f"{h['gain']:+.4f}"
    if h.get("gain_low") is not None:
        text += f" [{h['gain_low']:+.4f}, {h['gain_high']:+.4f}]"
    return text


def _has_intervals(history: list[dict]) -> bool:
    return any(h.get("gain_low") is not None for h in history)


def _sized(history: list[dict]) -> bool:
    """Whether every step records the ensemble's bytes (a selection with costs)."""
    return bool(history) and all(h.get("bytes") is not None for h in history)


def plot_history(
    path: str,
    history: list[dict],
    single_gaps: dict[str, float] | None = None,
    top_k: int | None = None,
    max_mb: float | None = None,
    stopped: dict | None = None,
    confidence: float = 0.95,
) -> str:
    """PNG of validation GAP against ensemble size (greedy steps), with the best single model;
    where the steps record gain intervals, error bars show each step's gain interval drawn
    from the previous step's GAP (a bar reaching below the previous point: a gain that may be
    noise), and the step `--min_gain` refused is a cross. Where the steps record bytes, a
    second panel plots GAP against the ensemble's MB (and the budget MAX_MB)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sized = _sized(history)
    fig, axes = plt.subplots(1, 2 if sized else 1, figsize=(11 if sized else 6, 4), dpi=100)
    axes = list(axes) if sized else [axes]
    steps = [h["step"] for h in history]
    _gap_panel(axes[0], steps, history, single_gaps, top_k)
    _gain_bars(axes[0], steps, history, stopped, confidence)
    axes[0].set_xlabel("ensemble size (greedy steps)")
    axes[0].set_xticks(steps + ([stopped["step"]] if stopped else []))
    if sized:
        sizes = [h["bytes"] / MB for h in history]
        _gap_panel(axes[1], sizes, history, single_gaps, top_k, new_only=True)
        _gain_bars(axes[1], sizes, history, None, confidence)
        if max_mb is not None:
            axes[1].axvline(max_mb, color="red", linestyle=":", label=f"budget {max_mb:g} MB")
        axes[1].set_xlabel("ensemble size (MB)")
    for ax in axes:
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def _gain_bars(ax, xs, history, stopped, confidence) -> None:
    """Error bars of each step's gain interval (from the previous GAP), and the refused step."""
    level = f"{confidence * 100:g}%"
    if _has_intervals(history):
        at = [j for j, h in enumerate(history) if h.get("gain_low") is not None]
        gaps = [history[j]["gap"] for j in at]
        below = [history[j]["gain"] - history[j]["gain_low"] for j in at]
        above = [history[j]["gain_high"] - history[j]["gain"] for j in at]
        ax.errorbar(
            [xs[j] for j in at], gaps, yerr=[below, above], fmt="none", ecolor="C0", alpha=0.6,
            capsize=3, label=f"{level} interval of the step's gain",
        )  # fmt: skip
    if stopped:
        ax.plot([stopped["step"]], [stopped["gap"]], marker="x", color="red", linestyle="none",
                label=f"step {stopped['step']} not taken (min_gain)")  # fmt: skip
        if stopped.get("gain_low") is not None:
            ax.errorbar(
                [stopped["step"]], [stopped["gap"]],
                yerr=[[stopped["gain"] - stopped["gain_low"]], [stopped["gain_high"] - stopped["gain"]]],
                fmt="none", ecolor="red", alpha=0.6, capsize=3,
            )  # fmt: skip


def _gap_panel(ax, xs, history, single_gaps, top_k, new_only=False) -> None:
    """The greedy GAPs at XS, each point named by its model (NEW_ONLY: only where the model
    joins, as repeats sit at the same MB), and the best single model."""
    gaps = [h["gap"] for h in history]
    ax.plot(xs, gaps, marker="o", label="greedy ensemble")
    seen = set()
    for x, gap, h in zip(xs, gaps, history):
        if new_only and h["model"] in seen:
            continue
        seen.add(h["model"])
        ax.annotate(
            h["model"], (x, gap), textcoords="offset points", xytext=(4, -10), fontsize=7,
            rotation=-30,
        )  # fmt: skip
    if single_gaps:
        best = max(single_gaps, key=single_gaps.get)
        ax.axhline(
            single_gaps[best], color="grey", linestyle="--", label=f"best single model ({best})"
        )
    ax.set_ylabel(f"validation GAP@{top_k or 'k'}")
    ax.grid(alpha=0.3)
