"""Ensemble recipes (JSON that `y8m ensemble --recipe` replays), the selection table and the plot."""

from __future__ import annotations

import datetime
import json

from y8m.errors import UsageError
from y8m.fileio import atomic_open, atomic_path

RECIPE_FORMAT = "y8m.ensemble_recipe"
RECIPE_VERSION = 1
METHODS = ("greedy", "mean", "weighted", "rank")


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
) -> dict:
    """The replayable description of an ensemble.

    Args:
        method: "greedy", "mean", "weighted" or "rank" ("rank" replays as a rank average).
        weights: model name -> weight (summing to 1).
        top_k: k of GAP@k and the pairs per video in the submission.
        version: Kaggle format year.
        validation, test: the input globs.
        history: greedy steps (step, model, weight, gap).
        best_step: the greedy step the weights come from.
        validation_gap: GAP of the ensemble on validation.
        single_gaps: model -> validation GAP alone.
        options: other settings (greedy steps, replacement).
    """
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


def format_table(history: list[dict], best_step: int | None = None) -> str:
    """The selection table: step, model, weight, validation GAP (the used step is marked *)."""
    width = max([len("model"), *(len(h["model"]) for h in history)])
    lines = [f"{'step':>4}  {'model':<{width}}  {'weight':>6}  {'GAP':>7}"]
    for h in history:
        mark = " *" if h["step"] == best_step else ""
        lines.append(
            f"{h['step']:>4}  {h['model']:<{width}}  {h['weight']:>6.3f}  {h['gap']:>7.4f}{mark}"
        )
    return "\n".join(lines)


def plot_history(
    path: str,
    history: list[dict],
    single_gaps: dict[str, float] | None = None,
    top_k: int | None = None,
) -> str:
    """PNG of validation GAP against ensemble size (greedy steps), with the best single model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    gaps = [h["gap"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(steps, gaps, marker="o", label="greedy ensemble")
    for step, gap, h in zip(steps, gaps, history):
        ax.annotate(
            h["model"],
            (step, gap),
            textcoords="offset points",
            xytext=(4, -10),
            fontsize=7,
            rotation=-30,
        )
    if single_gaps:
        best = max(single_gaps, key=single_gaps.get)
        ax.axhline(
            single_gaps[best], color="grey", linestyle="--", label=f"best single model ({best})"
        )
    ax.set_xlabel("ensemble size (greedy steps)")
    ax.set_ylabel(f"validation GAP@{top_k or 'k'}")
    ax.set_xticks(steps)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
