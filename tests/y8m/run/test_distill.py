"""Offline distillation: teacher stores by id, the mixed loss, and a student that gains."""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import pytest

from frame_models.losses import distillation_cross_entropy
from y8m.errors import UsageError
from y8m.predictions import PredictionWriter
from y8m.run.teacher import load_teacher

NUM_CLASSES = 6


def _store(path, ids, classes, scores, model_name="teacher", num_classes=NUM_CLASSES):
    with PredictionWriter(
        path, model_name=model_name, split="train", num_classes=num_classes, top_k=2
    ) as writer:
        writer.add_topk(list(ids), np.array(classes), np.array(scores))
    return writer.path


def _bce(y, p, eps=1e-5):
    return -(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))


def test_loss_at_temperature_one_is_the_mixed_target_cross_entropy():
    rng = np.random.default_rng(0)
    y = (rng.random((4, 5)) < 0.3).astype("float32")
    p = rng.uniform(0.01, 0.99, (4, 5)).astype("float32")
    q = rng.uniform(0.0, 1.0, (4, 5)).astype("float32")
    got = float(distillation_cross_entropy(y, p, q, weight=0.3))
    expected = np.mean(np.sum(0.3 * _bce(q, p) + 0.7 * _bce(y, p), axis=-1))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    mixed = np.mean(np.sum(_bce(0.3 * q + 0.7 * y, p), axis=-1))
    np.testing.assert_allclose(got, mixed, rtol=1e-5)


def test_loss_with_temperature_softens_both_sides_and_scales_by_t_squared():
    rng = np.random.default_rng(1)
    y = (rng.random((3, 4)) < 0.3).astype("float32")
    p = rng.uniform(0.01, 0.99, (3, 4)).astype("float32")
    q = rng.uniform(0.01, 0.99, (3, 4)).astype("float32")

    def soften(x, t, eps=1e-5):
        return 1 / (1 + np.exp(-(np.log(x + eps) - np.log(1 - x + eps)) / t))

    got = float(distillation_cross_entropy(y, p, q, weight=0.5, temperature=2.0))
    soft = 4.0 * _bce(soften(q, 2.0), soften(p, 2.0))
    expected = np.mean(np.sum(0.5 * soft + 0.5 * _bce(y, p), axis=-1))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_teacher_targets_are_looked_up_by_id_and_models_averaged(tmp_path):
    import tensorflow as tf

    _store(tmp_path / "a_part1", ["v1", "v2"], [[1, 2], [0, -1]], [[0.8, 0.4], [0.6, 0.0]], "a")
    _store(tmp_path / "a_part2", ["v3"], [[5, 1]], [[0.2, 0.1]], "a")
    _store(tmp_path / "b", ["v3", "v2", "v1"], [[5, 0], [0, 1], [1, 3]],
           [[0.4, 0.3], [0.2, 0.1], [0.6, 0.5]], "b")  # fmt: skip
    teacher = load_teacher(str(tmp_path / "*.parquet"), NUM_CLASSES)
    assert teacher.models == ["a", "b"]
    batch = tf.data.Dataset.from_tensor_slices({"id": ["v2", "v3", "v1"]}).batch(3)
    dense = next(iter(teacher.attach(batch)))["teacher"].numpy()
    expected = np.zeros((3, NUM_CLASSES), "float32")
    expected[0, [0, 1]] = [(0.6 + 0.2) / 2, 0.1 / 2]
    expected[1, [5, 1, 0]] = [(0.2 + 0.4) / 2, 0.1 / 2, 0.3 / 2]
    expected[2, [1, 2, 3]] = [(0.8 + 0.6) / 2, 0.4 / 2, 0.5 / 2]
    np.testing.assert_allclose(dense, expected, atol=1e-6)


def test_bad_teacher_stores_are_one_line_errors(tmp_path):
    _store(tmp_path / "a1", ["v1", "v2"], [[1, 2], [0, -1]], [[0.8, 0.4], [0.6, 0.0]], "a")
    _store(tmp_path / "a2", ["v2"], [[1, 2]], [[0.8, 0.4]], "a")
    with pytest.raises(UsageError, match="more than one --distill_from store"):
        load_teacher(str(tmp_path / "a*.parquet"), NUM_CLASSES)
    _store(tmp_path / "b", ["v1"], [[1, 2]], [[0.8, 0.4]], "b")
    with pytest.raises(UsageError, match="hold different videos"):
        load_teacher(f"{tmp_path / 'a1.parquet'},{tmp_path / 'b.parquet'}", NUM_CLASSES)
    with pytest.raises(UsageError, match="has 6 classes, the run 7"):
        load_teacher(str(tmp_path / "b.parquet"), 7)
    with pytest.raises(UsageError, match="no --distill_from prediction stores match"):
        load_teacher(str(tmp_path / "none*.parquet"), NUM_CLASSES)


def _train(synth_dir, train_dir, **flags):
    from y8m.run.train import train

    options = dict(batch_size=16, max_steps=4, precise_bn_batches=0, progress=False)
    options["model"] = "average_logistic"
    return train(
        train_data_pattern=str(synth_dir / "frame" / "train*.tfrecord"),
        train_dir=str(train_dir),
        **{**options, **flags},
    )


def _teacher_store(synth_dir, tmp_path, pattern="train*.tfrecord"):
    from y8m.run.predict import predict

    # Trained enough for its predictions to leave 0.5 (the loss is log 2 per class there).
    _train(synth_dir, tmp_path / "teacher", max_steps=30, base_learning_rate=0.05)
    out = predict(
        train_dir=str(tmp_path / "teacher"),
        input_data_pattern=str(synth_dir / "frame" / pattern),
        output_file=str(tmp_path / "teacher_train"),
        progress=False,
    )
    return out["output_file"]


def test_train_records_the_teacher_and_uses_it(synth_dir, tmp_path):
    store = _teacher_store(synth_dir, tmp_path)
    _train(synth_dir, tmp_path / "distilled", seed=3, distill_from=store)
    config = json.loads((tmp_path / "distilled" / "config.json").read_text())
    assert config["train"]["distill"] == {
        "from": store,
        "weight": 0.5,
        "temperature": 1.0,
        "teacher_models": ["teacher"],
        "teacher_videos": 96,
    }


def test_the_step_gets_each_videos_teacher_row(synth_dir, tmp_path, monkeypatch):
    from y8m.predictions import load_predictions
    from y8m.run import train as train_module

    store = _teacher_store(synth_dir, tmp_path)
    seen = []
    real = train_module.make_train_step

    def spy(*args, **kwargs):
        assert kwargs["distill"] == {"weight": 0.25, "temperature": 2.0}
        step = real(*args, **kwargs)

        def recorded(inputs, labels, *extra):
            seen.append((np.asarray(labels), np.asarray(extra[0])))
            return step(inputs, labels, *extra)

        return recorded

    monkeypatch.setattr(train_module, "make_train_step", spy)
    _train(synth_dir, tmp_path / "student", max_steps=2, distill_from=store,
           distill_weight=0.25, distill_temperature=2.0)  # fmt: skip
    teacher = load_predictions(store)
    dense = np.zeros((teacher.num_videos, teacher.num_classes), "float32")
    np.put_along_axis(dense, np.maximum(teacher.classes, 0), teacher.scores, axis=1)
    assert len(seen) == 2
    for labels, targets in seen:
        assert targets.shape == labels.shape
        for label_row, row in zip(labels, targets):  # the teacher row of the same video
            distance = np.abs(dense - row).max(axis=1)
            video = int(distance.argmin())
            assert distance[video] < 1e-6
            assert sorted(np.flatnonzero(label_row)) == sorted(teacher.labels[video])


def test_weight_zero_is_the_label_loss():
    from frame_models.losses import CrossEntropyLoss

    rng = np.random.default_rng(2)
    y = (rng.random((4, 7)) < 0.3).astype("float32")
    p = rng.uniform(0.0, 1.0, (4, 7)).astype("float32")
    q = rng.uniform(0.0, 1.0, (4, 7)).astype("float32")
    np.testing.assert_allclose(
        float(distillation_cross_entropy(y, p, q, weight=0.0)),
        float(CrossEntropyLoss()(y, p)),
        rtol=1e-6,
    )


def test_missing_training_videos_are_an_error(synth_dir, tmp_path):
    store = _teacher_store(synth_dir, tmp_path, pattern="train*0000*.tfrecord")
    with pytest.raises(UsageError, match="training videos are missing from the --distill_from"):
        _train(synth_dir, tmp_path / "student", distill_from=store)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"distill_weight": 1.5}, "--distill_weight"),
        ({"distill_temperature": 0}, "--distill_temperature"),
        ({"segment_labels": True}, "does not combine with --segment_labels"),
    ],
)
def test_bad_flags(synth_dir, tmp_path, flags, message):
    with pytest.raises(UsageError, match=message):
        _train(synth_dir, tmp_path / "bad", distill_from="x*.parquet", **flags)


def _noisy_copy(src_dir, dst_dir, fraction, seed):
    """The training records with `fraction` of the videos' labels replaced by 2 random
    classes of those that occur: labels a stronger teacher (trained on clean ones) corrects."""
    import tensorflow as tf

    files = sorted(glob.glob(os.path.join(src_dir, "train*.tfrecord")))
    examples = [
        tf.train.SequenceExample.FromString(raw.numpy())
        for path in files
        for raw in tf.data.TFRecordDataset(path)
    ]
    seen = sorted({c for e in examples for c in e.context.feature["labels"].int64_list.value})
    rng = np.random.default_rng(seed)
    os.makedirs(dst_dir, exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(dst_dir, "train0000.tfrecord")) as writer:
        for example in examples:
            labels = example.context.feature["labels"].int64_list
            if rng.random() < fraction:
                del labels.value[:]
                labels.value.extend(int(c) for c in rng.choice(seen, 2, replace=False))
            writer.write(example.SerializeToString())


@pytest.mark.slow
def test_student_distilled_from_a_stronger_teacher_beats_labels_alone(tmp_path):
    from y8m.data.synth import synthesize
    from y8m.run.evaluate import evaluate
    from y8m.run.predict import predict
    from y8m.run.train import train

    data = tmp_path / "data"
    synthesize(str(data), videos=480, validate_videos=240, test_videos=8, shards=2, seed=3,
               level="frame", min_frames=20, max_frames=40, num_classes=64, active_classes=20,
               verticals=4, progress=False)  # fmt: skip
    _noisy_copy(data / "frame", tmp_path / "noisy", fraction=0.6, seed=0)
    common = dict(batch_size=32, max_steps=120, precise_bn_batches=40, seed=0, progress=False)
    validate = str(data / "frame" / "validate*.tfrecord")

    def run(name, pattern, sizes, **flags):
        train(model="gated_netvlad", train_data_pattern=pattern, train_dir=str(tmp_path / name),
              sample_frames=30, **sizes, **common, **flags)  # fmt: skip
        return evaluate(train_dir=str(tmp_path / name), eval_data_pattern=validate,
                        progress=False)["gap"]  # fmt: skip

    teacher_gap = run("teacher", str(data / "frame" / "train*.tfrecord"),
                      dict(cluster_size=16, hidden_size=64))  # fmt: skip
    store = predict(train_dir=str(tmp_path / "teacher"),
                    input_data_pattern=str(tmp_path / "noisy" / "train*.tfrecord"),
                    output_file=str(tmp_path / "teacher_train"), progress=False)["output_file"]  # fmt: skip
    student = dict(cluster_size=16, hidden_size=64)
    noisy = str(tmp_path / "noisy" / "train*.tfrecord")
    alone = run("labels", noisy, student)
    distilled = run("distilled", noisy, student, distill_from=store, distill_weight=0.8)
    print(f"teacher {teacher_gap:.4f}  labels alone {alone:.4f}  distilled {distilled:.4f}")
    assert distilled > alone + 0.03
