"""Fine-tuning from another run (--init_from) and the segment-label loss's weights."""

import json

import numpy as np
import pytest

from y8m.errors import UsageError


def _train(synth_dir, train_dir, **kw):
    from y8m.run.train import train

    options = dict(
        train_data_pattern=str(synth_dir / "frame" / "train*.tfrecord"),
        train_dir=str(train_dir),
        batch_size=8,
        num_classes=64,
        progress=False,
    )
    options.update(kw)
    return train(**options)


def test_unrated_classes_get_no_gradient():
    import tensorflow as tf

    from frame_models.losses import per_class_cross_entropy, weighted_cross_entropy

    labels = tf.constant([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    weights = tf.constant([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    p = tf.Variable([[0.7, 0.2, 0.9, 0.4], [0.1, 0.5, 0.3, 0.8]])
    with tf.GradientTape() as tape:
        loss = weighted_cross_entropy(labels, p, weights)
    grad = tape.gradient(loss, p).numpy()
    assert np.all(grad[weights.numpy() == 0] == 0) and np.all(grad[weights.numpy() == 1] != 0)
    # By definition: the rated classes' cross-entropy, summed per example, mean over the batch.
    per_class = per_class_cross_entropy(labels, p).numpy()
    want = (per_class * weights.numpy()).sum(1).mean()
    assert float(loss) == pytest.approx(want, rel=1e-6)
    assert float(loss) == pytest.approx(
        (-np.log(0.7 + 1e-5) - np.log(0.8 + 1e-5) - np.log(0.3 + 1e-5)) / 2, rel=1e-5
    )


def test_init_from_starts_from_the_source_weights_with_a_fresh_optimizer(
    synth_dir, tmp_path, capsys
):
    import keras

    source = tmp_path / "video_level"
    _train(synth_dir, source, model="average_logistic", max_steps=3, base_learning_rate=0.05)
    start = keras.models.load_model(str(source / "model.keras"), compile=False).get_weights()
    tuned = tmp_path / "tuned"
    # lr 0: the weights stay where they started, so the start is visible in the result.
    result = _train(synth_dir, tuned, init_from=str(source), max_steps=2, base_learning_rate=1e-12)
    assert result["step"] == 2  # a fresh step counter, not 3 + 2
    assert "initialised from" in capsys.readouterr().out
    config = json.loads((tuned / "config.json").read_text())
    assert config["model"] == "average_logistic" and config["init_from"]["checkpoint"] == "latest"
    end = keras.models.load_model(str(tuned / "model.keras"), compile=False).get_weights()
    for a, b in zip(start, end):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_init_from_refuses_architecture_flags_and_unfinished_runs(synth_dir, tmp_path):
    source = tmp_path / "src"
    _train(synth_dir, source, model="average_logistic", max_steps=1)
    with pytest.raises(UsageError, match="fixes the architecture.*--model=lstm"):
        _train(synth_dir, tmp_path / "a", init_from=str(source), model="lstm", max_steps=1)
    with pytest.raises(UsageError, match="drop --num_classes=32"):
        _train(synth_dir, tmp_path / "b", init_from=str(source), num_classes=32, max_steps=1)
    with pytest.raises(UsageError, match="no trained model"):
        _train(synth_dir, tmp_path / "c", init_from=str(tmp_path / "nothing"), max_steps=1)


def test_segment_label_fine_tuning_on_2019_ratings(tmp_path):
    from y8m.data.synth import synthesize
    from y8m.run.evaluate import evaluate

    data = tmp_path / "s19"
    synthesize(
        str(data), version=2019, videos=60, num_classes=32, active_classes=8, level="frame",
        shards=2, progress=False,
    )  # fmt: skip
    small = dict(cluster_size=8, hidden_size=32, num_mixtures=2, precise_bn_batches=5)
    video = tmp_path / "video"
    _train(data, video, model="gated_netvlad", max_steps=10, num_classes=32, **small)
    validate = str(data / "frame" / "validate*.tfrecord")
    tuned = tmp_path / "tuned"
    _train(
        data, tuned, segment_labels=True, init_from=str(video), max_steps=30, num_classes=32,
        train_data_pattern=validate, base_learning_rate=1e-3, precise_bn_batches=5,
    )  # fmt: skip
    config = json.loads((tuned / "config.json").read_text())
    assert config["data"]["segment_labels"] and config["data"]["version"] == 2019
    before = evaluate(
        train_dir=str(video), eval_data_pattern=validate, segments=True, progress=False
    )
    after = evaluate(
        train_dir=str(tuned), eval_data_pattern=validate, segments=True, progress=False
    )
    assert after["map"] > before["map"]  # trained on these very ratings
    with pytest.raises(UsageError, match="no segment ratings"):
        _train(
            data, tmp_path / "bad", segment_labels=True, model="gated_netvlad", max_steps=1,
            num_classes=32, **small,
        )  # fmt: skip
