"""The 2019 recipe on planted data where video-level training learns the wrong cue.

Every video of class c shows a context cue of c in all its frames; the action that raters mark
appears only in some segments of it, and also at random in videos of other classes. So at the
video level the context is the more reliable cue, and a video-level model scores every segment
of a class-c video alike: on the rated segments (action vs no action, same context) it ranks
no better than chance. Fine-tuning on the ratings (--segment_labels --init_from) must learn the
action cue: held-out segment mAP rises by at least 0.3.
"""

import numpy as np
import pytest

from y8m.data import records, specs

CLASSES = 4  # all rated
FRAMES = 20  # four 5-frame segments


def _video(rng, label, action_segments, release, rated):
    rgb = rng.normal(128, 6, (FRAMES, 1024))
    context = slice(label * 40, label * 40 + 40)
    rgb[:, context] += 45  # the context of the video's class: every frame
    for s in action_segments:
        cue = slice(400 + s[1] * 40, 400 + s[1] * 40 + 40)
        rgb[s[0] * 5 : s[0] * 5 + 5, cue] += 45  # an action (of class s[1]) in segment s[0]
    frames = {
        "rgb": np.clip(rgb, 0, 255).astype(np.uint8),
        "audio": np.full((FRAMES, 128), 128, np.uint8),
    }
    segments = None
    if rated:
        labels, starts, scores = [], [], []
        for seg in range(FRAMES // 5):
            labels.append(label)
            starts.append(seg * 5)
            scores.append(float(any(a == (seg, label) for a in action_segments)))
        segments = {
            specs.SEGMENT_LABELS_KEY: labels,
            specs.SEGMENT_START_TIMES_KEY: starts,
            specs.SEGMENT_SCORES_KEY: scores,
        }
    return frames, segments


def _write(path, rng, n, rated, release, offset):
    raw = []
    for i in range(n):
        label = i % CLASSES
        own = [(int(s), label) for s in rng.choice(4, size=2, replace=False)]  # 2 of 4 segments
        other = [(int(rng.integers(4)), int((label + 1 + rng.integers(CLASSES - 1)) % CLASSES))]
        actions = own + (other if rng.random() < 0.7 else [])
        frames, segments = _video(rng, label, actions, release, rated)
        raw.append(
            records.encode_frame_example(f"v{offset + i}", [label], frames, release, segments)
        )
    records.write_tfrecord(str(path), raw)


@pytest.mark.slow
def test_fine_tuning_on_ratings_beats_video_level_training_by_0_3(tmp_path):
    from y8m.run.evaluate import evaluate
    from y8m.run.train import train

    release = specs.release(2019)
    rng = np.random.default_rng(0)
    data = tmp_path / "planted"
    data.mkdir()
    _write(data / "train0000.tfrecord", rng, 240, False, release, 0)
    _write(data / "validate0000.tfrecord", rng, 120, True, release, 1000)  # for fine-tuning
    _write(data / "validate0001.tfrecord", rng, 80, True, release, 2000)  # held out
    (data / specs.SEGMENT_LABEL_IDS_FILE).write_text(
        specs.SEGMENT_LABEL_IDS_COLUMN + "\n" + "".join(f"{c}\n" for c in range(CLASSES))
    )
    common = dict(batch_size=16, num_classes=8, progress=False, precise_bn_batches=20,
                  cluster_size=8, hidden_size=32, num_mixtures=2, sample_frames=10)  # fmt: skip
    video = tmp_path / "video"
    train(model="gated_netvlad", train_data_pattern=str(data / "train*.tfrecord"),
          train_dir=str(video), max_steps=150, base_learning_rate=3e-3, **common)  # fmt: skip
    held_out = str(data / "validate0001.tfrecord")
    before = evaluate(
        train_dir=str(video), eval_data_pattern=held_out, segments=True, progress=False
    )
    tuned = tmp_path / "tuned"
    del (
        common["cluster_size"],
        common["hidden_size"],
        common["num_mixtures"],
        common["sample_frames"],
    )
    del common["num_classes"]
    result = train(segment_labels=True, init_from=str(video), train_data_pattern=str(data / "validate0000.tfrecord"),
          train_dir=str(tuned), max_steps=150, base_learning_rate=3e-3, **common)  # fmt: skip
    after = evaluate(
        train_dir=str(tuned), eval_data_pattern=held_out, segments=True, progress=False
    )
    print(
        f"held-out segment mAP: video-level {before['map']:.3f}, fine-tuned {after['map']:.3f}; "
        f"fine-tuning {result['examples_per_s']:.0f} segments/s"
    )
    assert after["map"] >= before["map"] + 0.3
