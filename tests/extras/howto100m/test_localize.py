import itertools

import numpy as np
import pytest

from extras.howto100m.localize import (
    align_steps,
    read_annotation,
    read_task_videos,
    read_tasks,
    step_hits,
    task_recalls,
)
from y8m.errors import UsageError


def test_dp_hand_made_case_keeps_order_over_greedy():
    # Step 0 scores best at t=3 and step 1 at t=0, but steps must stay in order.
    scores = np.array(
        [
            [0.5, 0.8],
            [0.1, 0.2],
            [0.1, 0.6],
            [0.9, 0.1],
        ]
    )
    # (0, 2) totals 1.1; every other ordered pair is lower.
    assert align_steps(scores).tolist() == [0, 2]


def test_dp_hand_made_three_steps():
    scores = np.array(
        [
            [0.9, 0.1, 0.0],
            [0.2, 0.8, 0.0],
            [0.1, 0.9, 0.1],
            [0.0, 0.2, 0.3],
            [0.0, 0.1, 0.95],
            [0.5, 0.0, 0.2],
        ]
    )
    assert align_steps(scores).tolist() == [0, 2, 4]


def test_dp_needs_one_slot_per_step():
    assert align_steps(np.zeros((3, 3))).tolist() == [0, 1, 2]
    assert align_steps(np.zeros((5, 0))).tolist() == []
    with pytest.raises(ValueError):
        align_steps(np.zeros((2, 3)))


@pytest.mark.parametrize("seed", range(5))
def test_dp_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(8, 3))
    best = max(
        itertools.combinations(range(8), 3),
        key=lambda ts: sum(scores[t, k] for k, t in enumerate(ts)),
    )
    assert tuple(align_steps(scores)) == best


def test_crosstask_files_and_recall(tmp_path):
    tasks = tmp_path / "tasks_primary.txt"
    tasks.write_text(
        "101\nMake Bread\nhttps://x\n3\nmix flour,knead dough,bake\n\n"
        "202\nFix Bike\nhttps://y\n2\nremove wheel,patch tube\n\n"
    )
    assert read_tasks(str(tasks)) == {
        "101": ["mix flour", "knead dough", "bake"],
        "202": ["remove wheel", "patch tube"],
    }
    videos = tmp_path / "videos_val.csv"
    videos.write_text("101,vidA,https://a\n202,vidB,https://b\n")
    assert read_task_videos(str(videos)) == [("101", "vidA"), ("202", "vidB")]

    annotation = tmp_path / "101_vidA.csv"
    annotation.write_text("1,0.5,2.2\n3,6.0,7.9\n1,8.1,9.0\n")  # step 2 not annotated
    truth = read_annotation(str(annotation), num_slots=10, num_steps=3)
    assert truth[:, 0].nonzero()[0].tolist() == [0, 1, 2, 8]  # floor(start)..ceil(end)-1
    assert truth[:, 2].nonzero()[0].tolist() == [6, 7]
    assert step_hits(truth, np.array([2, 4, 5])) == (1, 2)  # step 0 hit, step 2 missed
    assert step_hits(truth, np.array([8, 9, 9])) == (1, 2)
    recalls = task_recalls({"101": [(1, 2), (2, 2)], "202": [(0, 3)]})
    assert recalls == {"101": pytest.approx(0.75), "202": 0.0}


def test_bad_task_file(tmp_path):
    tasks = tmp_path / "t.txt"
    tasks.write_text("101\nTitle\nurl\n3\na,b\n\n")
    with pytest.raises(UsageError, match="says 3 steps"):
        read_tasks(str(tasks))
    with pytest.raises(UsageError, match="not found"):
        read_tasks(str(tmp_path / "none.txt"))
