"""Linear probe on frozen `mixed_5c` features (thesis action-recognition protocol, HMDB-51)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from extras.milnce.data import index_videos
from extras.runtime.inputs import child_path
from y8m.errors import UsageError

SPLIT_TRAIN = 1
SPLIT_TEST = 2


def read_label_csv(path: str, video_root: str) -> tuple[pd.DataFrame, list[str]]:
    """Labelled videos: columns video_id or video_path, label, and split columns (split1, ...)
    whose values are 1 = train, 2 = test, 0 = unused (the released hmdb51.csv layout).

    Returns:
        (DataFrame with path, label and the split columns, the split column names).
    """
    frame = pd.read_csv(path, keep_default_na=False)
    if "label" not in frame.columns:
        raise UsageError(f"{path!r} needs a label column")
    splits = [c for c in frame.columns if str(c).startswith("split")]
    if not splits:
        raise UsageError(
            f"{path!r} needs split columns (split1, ...) with 1=train, 2=test, 0=unused"
        )
    if "video_path" in frame.columns:
        where = f"video_path in {path}"
        paths = [child_path(video_root, p, what=where) for p in frame["video_path"]]
    elif "video_id" in frame.columns:
        index = index_videos(video_root or ".")
        where = f"video_id in {path}"
        paths = [index.get(str(v)) or child_path("", v, what=where) for v in frame["video_id"]]
    else:
        raise UsageError(f"{path!r} needs a video_id or video_path column")
    out = pd.DataFrame({"path": paths, "label": frame["label"].astype(str)})
    for split in splits:
        out[split] = frame[split].astype(int)
    return out, splits


def probe_split(
    features: np.ndarray,
    labels: np.ndarray,
    split: np.ndarray,
    C: float = 100.0,
    max_iter: int = 10_000,
) -> dict:
    """Fits a linear SVM on every window of the training videos and scores the test videos.

    Each training window is a sample with its video's label. A test video's class is the argmax
    of its decision values summed over its windows.

    Args:
        features: float [N, W, D] per-window features.
        labels: int [N] class indices.
        split: int [N]: 1 train, 2 test, anything else unused.
        C: SVM regularisation (100 in the released evaluation).
        max_iter: liblinear iterations.

    Returns:
        {"top1": accuracy, "num_train": videos, "num_test": videos}.
    """
    from sklearn.svm import LinearSVC

    train, test = split == SPLIT_TRAIN, split == SPLIT_TEST
    if not train.any() or not test.any():
        raise UsageError("a split needs at least one training (1) and one test (2) video")
    if len(np.unique(labels[train])) < 2:
        raise UsageError("the training videos of a split must cover at least two labels")
    n, w, d = features.shape
    svm = LinearSVC(C=C, max_iter=max_iter)
    svm.fit(features[train].reshape(-1, d), np.repeat(labels[train], w))
    scores = svm.decision_function(features[test].reshape(-1, d))  # (N_test * W, C) or (N*W,)
    if scores.ndim == 1:  # binary: one column, positive = classes_[1]
        scores = np.stack([-scores, scores], axis=1)
    scores = scores.reshape(int(test.sum()), w, -1).sum(axis=1)  # (N_test, classes)
    predicted = svm.classes_[scores.argmax(axis=1)]
    return {
        "top1": float(np.mean(predicted == labels[test])),
        "num_train": int(train.sum()),
        "num_test": int(test.sum()),
    }
