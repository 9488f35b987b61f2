import itertools
import math

import numpy as np
import pytest

from extras.howto100m.localize import (
    align_steps,
    alignment_scores,
    log_softmax_steps,
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


# What the DP aligns: the official CrossTask evaluation takes -log_softmax over the steps of
# each frame's scores; "raw" aligns the similarities themselves.
# Second 0 matches both steps alike (0.9, 0.9); second 1 shows step 0, second 2 step 1.
GENERIC_FIRST = np.array([[0.9, 0.9], [0.6, 0.0], [0.0, 0.5]])


def _log_softmax_by_definition(scores):
    """log(exp(s_tk) / sum_j exp(s_tj)), one cell at a time."""
    return np.array(
        [[math.log(math.exp(v) / sum(math.exp(u) for u in row)) for v in row] for row in scores]
    )


def _brute_force(cost):
    """The ordered one-slot-per-step assignment of least total cost, by enumeration."""
    num_slots, num_steps = cost.shape
    return min(
        itertools.combinations(range(num_slots), num_steps),
        key=lambda ts: sum(cost[t, k] for k, t in enumerate(ts)),
    )


def test_official_and_raw_alignments_differ_where_a_second_matches_every_step():
    raw = align_steps(alignment_scores(GENERIC_FIRST, "raw"))
    official = align_steps(alignment_scores(GENERIC_FIRST, "official"))
    # raw: 0.9 + 0.5 at (0, 2) beats 0.6 + 0.5 at (1, 2); log-softmax: second 0 says nothing
    # about which step it shows (log 1/2 each), second 1 singles out step 0.
    assert raw.tolist() == [0, 2] and official.tolist() == [1, 2]
    assert official.tolist() == align_steps(alignment_scores(GENERIC_FIRST)).tolist()  # default
    truth = np.zeros((3, 2), dtype=np.uint8)
    truth[1, 0] = truth[2, 1] = 1
    assert step_hits(truth, raw) == (1, 2) and step_hits(truth, official) == (2, 2)


def test_official_alignment_ignores_a_per_second_offset_raw_does_not():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(9, 3))
    shifted = scores + rng.normal(scale=3.0, size=(9, 1))  # e.g. a second's overall brightness
    official = align_steps(alignment_scores(scores))
    assert align_steps(alignment_scores(shifted)).tolist() == official.tolist()
    assert align_steps(alignment_scores(shifted, "raw")).tolist() != align_steps(scores).tolist()


@pytest.mark.parametrize("seed", range(5))
def test_official_alignment_is_the_crosstask_definition(seed):
    rng = np.random.default_rng(seed)
    scores = rng.normal(scale=2.0, size=(7, 3))
    log_softmax = _log_softmax_by_definition(scores)
    np.testing.assert_allclose(log_softmax_steps(scores), log_softmax, atol=1e-12)
    # CrossTask's dp minimises the sum of -log_softmax over one frame per step, in order.
    expected = _brute_force(-log_softmax)
    assert tuple(align_steps(alignment_scores(scores, "official"))) == expected
    assert tuple(align_steps(alignment_scores(scores, "raw"))) == _brute_force(-scores)


def test_alignment_names_are_checked():
    with pytest.raises(ValueError, match="official"):
        alignment_scores(GENERIC_FIRST, "softmax")
    assert log_softmax_steps(np.zeros((4, 0))).shape == (4, 0)
    assert np.isfinite(log_softmax_steps(np.array([[1000.0, -1000.0]]))).all()
