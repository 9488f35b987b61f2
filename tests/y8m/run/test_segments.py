"""The 2019 segment workflow: cutting videos into 5-frame segments, predict and eval --segments."""

import numpy as np
import pytest

from y8m.run.segments import cut_segments


def test_cut_segments_matches_a_loop():
    rng = np.random.default_rng(0)
    num_frames = np.array([12, 5, 0, 3], np.int32)
    x = rng.normal(size=(4, 15, 3)).astype(np.float32)
    x[np.arange(15)[None, :] >= num_frames[:, None]] = 0.0
    batch = {"id": np.array([b"a", b"b", b"c", b"d"]), "rgb": x, "num_frames": num_frames}
    ids, inputs = cut_segments(batch, ["rgb"])
    assert ids == ["a:0", "a:5", "a:10", "b:0", "d:0"]
    assert inputs["num_frames"].tolist() == [5, 5, 2, 5, 3]
    np.testing.assert_array_equal(inputs["rgb"][1], x[0, 5:10])
    np.testing.assert_array_equal(inputs["rgb"][2][:2], x[0, 10:12])
    assert not inputs["rgb"][2][2:].any() and not inputs["rgb"][4][3:].any()


@pytest.mark.slow
def test_predict_and_eval_segments(tmp_path):
    from submissions.formats import read_segment_submission
    from y8m.data.synth import synthesize
    from y8m.run.evaluate import evaluate
    from y8m.run.predict import predict
    from y8m.run.train import train

    data = tmp_path / "data"
    synthesize(
        str(data),
        version=2019,
        videos=48,
        validate_videos=16,
        test_videos=8,
        shards=1,
        min_frames=10,
        max_frames=25,
        active_classes=6,
        num_classes=32,
        level="frame",
        progress=False,
    )
    run = tmp_path / "run"
    train(
        model="netvlad",
        train_data_pattern=str(data / "frame" / "train*.tfrecord"),
        train_dir=str(run),
        batch_size=16,
        max_steps=3,
        num_classes=32,
        cluster_size=4,
        hidden_size=8,
        sample_frames=8,
        progress=False,
    )
    out = predict(
        train_dir=str(run),
        input_data_pattern=str(data / "frame" / "test*.tfrecord"),
        output_file=str(tmp_path / "seg"),
        segments=True,
        segment_max_pred=7,
        progress=False,
    )
    per_class = read_segment_submission(out["output_file"])
    assert per_class and all(len(v) <= 7 for v in per_class.values())
    assert all(int(s.split(":")[1]) % 5 == 0 for v in per_class.values() for s in v)
    result = evaluate(
        train_dir=str(run),
        eval_data_pattern=str(data / "frame" / "validate*.tfrecord"),
        segments=True,
        progress=False,
    )
    assert 0.0 <= result["map"] <= 1.0 and result["num_classes"] > 0
