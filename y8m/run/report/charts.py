"""The report's pictures: matplotlib figures rendered to PNG data URIs, so the page is one file."""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd

_WIDE = (8.0, 3.6)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def data_uri(fig) -> str:
    """The figure as a `data:image/png;base64,...` URI (the figure is closed)."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    _pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _store_names(table: pd.DataFrame, prefix: str) -> list[str]:
    return [c[len(prefix) :] for c in table.columns if c.startswith(prefix)]


def vertical_chart(verticals: pd.DataFrame) -> str:
    """Horizontal bars: mean class AP of each vertical, one bar per store."""
    plt = _pyplot()
    stores = _store_names(verticals, "mean_ap:")
    rows = verticals.sort_values("positives", ascending=True)
    height = max(2.5, 0.32 * len(rows) * max(1, len(stores)) ** 0.5 + 1.0)
    fig, ax = plt.subplots(figsize=(8.0, min(height, 14.0)))
    y = np.arange(len(rows))
    width = 0.8 / max(1, len(stores))
    for i, store in enumerate(stores):
        ax.barh(y + i * width, rows[f"mean_ap:{store}"].fillna(0), height=width, label=store)
    ax.set_yticks(y + width * (len(stores) - 1) / 2)
    ax.set_yticklabels([f"{v} ({n})" for v, n in zip(rows["vertical"], rows["classes"])])
    ax.set_xlabel("mean class AP")
    ax.set_xlim(0, 1)
    ax.set_title("mean AP per vertical (classes in brackets)")
    if len(stores) > 1:
        ax.legend(fontsize="small", loc="lower right")
    return data_uri(fig)


def long_tail_chart(tail: pd.DataFrame) -> str:
    """Mean class AP by frequency bucket, rarest first, one line per store."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=_WIDE)
    for store in _store_names(tail, "mean_ap:"):
        ax.plot(tail["bucket"], tail[f"mean_ap:{store}"], "o-", label=store)
    ax.set_xticks(tail["bucket"])
    ax.set_xticklabels(tail["frequency"], rotation=20, fontsize="small")
    source = tail["count_source"].iloc[0] if len(tail) else "train_videos"
    ax.set_xlabel("training videos per class" if source == "train_videos" else "positives")
    ax.set_ylabel("mean class AP")
    ax.set_ylim(0, 1)
    ax.set_title("the long tail: AP by class frequency")
    ax.legend(fontsize="small")
    return data_uri(fig)


def frequency_scatter(classes: pd.DataFrame) -> str:
    """Each class's AP against its frequency (log scale), one colour per store."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=_WIDE)
    counts = classes["train_videos"]
    label = "training videos"
    if counts.isna().any():
        counts, label = classes["positives"], "positives"
    for store in _store_names(classes, "ap:"):
        ax.scatter(np.maximum(counts, 1), classes[f"ap:{store}"], s=6, alpha=0.5, label=store)
    ax.set_xscale("log")
    ax.set_xlabel(f"{label} per class (log)")
    ax.set_ylabel("class AP")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("class AP by frequency")
    ax.legend(fontsize="small", markerscale=3)
    return data_uri(fig)


def calibration_chart(tables: dict[str, pd.DataFrame]) -> str:
    """Reliability curves of the top-k scores: hit rate against mean score per bin."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 4.2))
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", label="calibrated")
    for store, table in tables.items():
        used = table["entries"] > 0
        ax.plot(table["mean_score"][used], table["hit_rate"][used], "o-", label=store)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean score in bin")
    ax.set_ylabel("fraction that are labels")
    ax.set_title("calibration of the top-k scores")
    ax.legend(fontsize="small")
    return data_uri(fig)


def curves_chart(curves: pd.DataFrame) -> str:
    """Training loss, learning rate and validation GAP against step, one line per run."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(11.0, 3.4))
    panels = (("loss", "training loss"), ("learning_rate", "learning rate"))
    panels += (("validation_gap", "validation GAP"),)
    for ax, (column, title) in zip(axes, panels):
        for run, part in curves.groupby("run", sort=True):
            part = part.dropna(subset=[column])
            if len(part):
                style = "o-" if column == "validation_gap" else "-"
                ax.plot(part["step"], part[column], style, label=run, markersize=3)
        values = curves[column].dropna()
        positive = values[values > 0]
        if column != "validation_gap" and len(positive) and positive.max() > 100 * positive.min():
            ax.set_yscale("log")  # the first steps would flatten the rest of the curve
        if values.empty:
            ax.text(0.5, 0.5, "none recorded:\ntrain with\n--validate_data_pattern",
                    ha="center", va="center", transform=ax.transAxes, color="0.4")  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
        ax.set_title(title)
        ax.set_xlabel("step")
    axes[0].legend(fontsize="small")
    return data_uri(fig)
