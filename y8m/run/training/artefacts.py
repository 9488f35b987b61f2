"""What a finished run leaves besides model.keras: the training curve PNG and the weights' digest."""

from __future__ import annotations

import hashlib
import os

import numpy as np

from y8m.run import rundir


def has_history(train_dir: str) -> bool:
    return os.path.exists(rundir.path(train_dir, rundir.HISTORY_FILE))


def plot_history(train_dir: str, png_path: str) -> None:
    """The training curve from history.csv to PNG_PATH: loss (log scale when it spans decades)
    and validation GAP on a second axis."""
    import pandas as pd

    history_path = rundir.path(train_dir, rundir.HISTORY_FILE)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = pd.read_csv(history_path)
    fig, ax = plt.subplots(figsize=(7, 4))
    loss = h.dropna(subset=["loss"])
    ax.plot(loss["step"], loss["loss"], label="training loss", color="tab:blue")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    positive = loss["loss"][loss["loss"] > 0]
    if len(positive) and positive.max() > 100 * positive.min():
        ax.set_yscale("log")  # the first steps would flatten the rest of the curve
    val = h.dropna(subset=["validation_gap"])
    if len(val):
        ax2 = ax.twinx()
        ax2.plot(
            val["step"], val["validation_gap"], "o-", color="tab:orange", label="validation GAP"
        )
        ax2.set_ylabel("validation GAP")
    ax.set_title("training curve")
    fig.tight_layout()
    fig.savefig(png_path, format="png", dpi=100)
    plt.close(fig)


def fingerprint(net) -> str:
    """A digest of all weights: equal on every worker of a synchronous run."""
    digest = hashlib.sha256()
    for w in net.weights:
        digest.update(np.ascontiguousarray(np.asarray(w)).tobytes())
    return digest.hexdigest()[:16]
