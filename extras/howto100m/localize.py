"""CrossTask action-step localisation with the joint embedding (thesis 5.5.2).

Each second of a video is scored against the task's ordered step descriptions by cosine
similarity; a dynamic program gives every step exactly one second, in order; recall is the
share of annotated steps whose chosen second lies inside one of their annotated intervals,
summed over a task's videos (Zhukov et al., CVPR 2019).

What the dynamic program aligns (`alignment_scores`):

- "official" (the default): the CrossTask evaluation's input. Its `eval()` takes a
  log-softmax over the steps of each frame's scores and its `dp` minimises the sum of
  -log_softmax over the chosen (frame, step) cells, i.e. maximises
  sum_k log_softmax(s[t_k, :])[k]. A second counts for a step by how much that step stands
  out among the task's steps there, so a second that matches every step alike (a
  close-up of the bench, the presenter talking) is not chosen for all of them.
- "raw": the similarities themselves, sum_k s[t_k, k] (what y8m did before; a second's
  overall similarity to the task then decides as much as which step it shows).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence

import numpy as np

from y8m.errors import UsageError

ALIGNMENTS = ("official", "raw")


def log_softmax_steps(scores: np.ndarray) -> np.ndarray:
    """log_softmax over the steps (axis 1) of each slot's scores [T, K], in float64."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape[1] == 0:
        return scores
    top = scores.max(axis=1, keepdims=True)
    return scores - (top + np.log(np.exp(scores - top).sum(axis=1, keepdims=True)))


def alignment_scores(similarity: np.ndarray, alignment: str = "official") -> np.ndarray:
    """What `align_steps` maximises for a [T, K] frame-step similarity (see the module
    docstring): its per-frame log-softmax over steps ("official") or itself ("raw")."""
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")
    if alignment == "raw":
        return np.asarray(similarity, dtype=np.float64)
    return log_softmax_steps(similarity)


def align_steps(scores: np.ndarray) -> np.ndarray:
    """Best ordered assignment of K steps to distinct time slots.

    Maximises sum_k scores[t_k, k] subject to t_1 < t_2 < ... < t_K, by dynamic programming
    in O(T K); slots not chosen are background. Ties go to the earliest slots.

    Args:
        scores: float [T, K], higher is better (e.g. similarity of second t and step k).

    Returns:
        int64 [K]: the slot of each step, strictly increasing.

    Raises:
        ValueError: fewer slots than steps.
    """
    scores = np.asarray(scores, dtype=np.float64)
    num_slots, num_steps = scores.shape
    if num_steps == 0:
        return np.zeros(0, dtype=np.int64)
    if num_slots < num_steps:
        raise ValueError(f"cannot place {num_steps} steps in order in {num_slots} slots")
    slots = np.arange(num_slots)
    best = scores[:, 0].copy()  # (T,) best total of steps 0..k with step k at slot t
    back = np.zeros((num_steps, num_slots), dtype=np.int64)
    for k in range(1, num_steps):
        running = np.maximum.accumulate(best)  # best over slots <= t
        improved = np.concatenate([[True], best[1:] > running[:-1]])
        argbest = np.maximum.accumulate(np.where(improved, slots, 0))
        # Step k at slot t follows step k - 1 at the best slot < t.
        previous = np.concatenate([[-np.inf], running[:-1]])
        back[k] = np.concatenate([[0], argbest[:-1]])
        best = scores[:, k] + previous
    path = np.zeros(num_steps, dtype=np.int64)
    path[-1] = int(np.argmax(best))
    for k in range(num_steps - 1, 0, -1):
        path[k - 1] = back[k, path[k]]
    return path


def read_tasks(path: str) -> dict[str, list[str]]:
    """CrossTask task file (tasks_primary.txt): blocks of id, title, url, n_steps, steps.

    Returns:
        task id -> ordered step descriptions.

    Raises:
        UsageError: missing file or a malformed block.
    """
    if not os.path.isfile(path):
        raise UsageError(f"task file {path!r} not found (CrossTask tasks_primary.txt)")
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f]
    tasks = {}
    blocks: list[list[str]] = [[]]
    for line in lines:
        if line:
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    for block in blocks:
        if not block:
            continue
        if len(block) != 5 or not block[3].isdigit():
            raise UsageError(f"{path}: bad task block starting {block[0]!r}: need 5 lines")
        steps = [s.strip() for s in block[4].split(",")]
        if len(steps) != int(block[3]):
            raise UsageError(
                f"{path}: task {block[0]} says {block[3]} steps but lists {len(steps)}"
            )
        tasks[block[0]] = steps
    if not tasks:
        raise UsageError(f"{path} lists no tasks")
    return tasks


def read_task_videos(path: str) -> list[tuple[str, str]]:
    """CrossTask video list (videos_val.csv): rows `task,video_id,url` -> [(task, video_id)]."""
    if not os.path.isfile(path):
        raise UsageError(f"video list {path!r} not found (CrossTask videos_val.csv)")
    with open(path, encoding="utf-8", newline="") as f:
        rows = [row for row in csv.reader(f) if row]
    if not rows or any(len(row) < 2 for row in rows):
        raise UsageError(f"{path}: expected rows task,video_id,url")
    return [(row[0].strip(), row[1].strip()) for row in rows]


def read_annotation(path: str, num_slots: int, num_steps: int) -> np.ndarray:
    """CrossTask annotation `step,start,end` rows (1-based steps, seconds) -> uint8 [T, K].

    A step covers seconds floor(start) .. ceil(end) - 1, as in the CrossTask code.
    """
    truth = np.zeros((num_slots, num_steps), dtype=np.uint8)
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.reader(f):
            if not row:
                continue
            step, start, end = int(row[0]) - 1, float(row[1]), float(row[2])
            if not 0 <= step < num_steps:
                raise UsageError(f"{path}: step {step + 1} outside 1..{num_steps}")
            truth[math.floor(start) : math.ceil(end), step] = 1
    return truth


def step_hits(truth: np.ndarray, path: np.ndarray) -> tuple[int, int]:
    """(annotated steps whose slot is inside their interval, annotated steps) for one video."""
    annotated = truth.any(axis=0)  # (K,)
    hits = truth[path, np.arange(len(path))].astype(bool) & annotated
    return int(hits.sum()), int(annotated.sum())


def task_recalls(hits: dict[str, Sequence[tuple[int, int]]]) -> dict[str, float]:
    """Per-task recall: sum of hits over sum of annotated steps across the task's videos."""
    out = {}
    for task, pairs in hits.items():
        total = sum(n for _, n in pairs)
        if total:
            out[task] = sum(h for h, _ in pairs) / total
    return out
