"""TrainingView: the branches' label losses and the distillation term of mix_nextvlad."""

import keras
import numpy as np
import pytest

from frame_models.auxiliary import TrainingView
from frame_models.losses import CrossEntropyLoss
from tests.frame_models.helpers import sigmoid, softmax
from tests.frame_models.models.tiny import NUM_CLASSES, build, frame_batch, labels


@pytest.fixture
def rng():
    return np.random.default_rng(5)


def _numpy_total(model, batch, y):
    """The reference's total loss from the model's own intermediate outputs."""
    layer = model.get_layer("online_distillation")
    probe = keras.Model(model.input, [model.output, layer.output, *layer.input[1:]])
    p, z_e, *z = (np.asarray(t, np.float64) for t in probe(batch, training=False))

    def bce(q):
        return np.mean(np.sum(-(y * np.log(q + 1e-5) + (1 - y) * np.log(1 - q + 1e-5)), -1))

    t, w = layer.temperature, layer.weight
    p_e = softmax(z_e / t)
    kl = sum(np.sum(p_e * (np.log(p_e + 1e-8) - np.log(softmax(z_m / t) + 1e-8)), -1) for z_m in z)
    return bce(p), bce(p) + sum(bce(sigmoid(z_m)) for z_m in z) + w * np.mean(kl)


def test_mix_nextvlad_adds_branch_losses_and_distillation(rng, tmp_path):
    model = build("mix_nextvlad", cl_temperature=2.0, cl_lambda=3.0)
    batch = frame_batch(rng)
    y = labels(rng, len(batch["num_frames"]))
    loss_fn = CrossEntropyLoss()
    view = TrainingView(model)
    assert view.has_auxiliary_losses
    p, output_loss, total = view(batch, lambda q: loss_fn(y, q), training=False)
    expected_output, expected_total = _numpy_total(model, batch, np.asarray(y, np.float64))
    np.testing.assert_allclose(np.asarray(p), np.asarray(model(batch, training=False)), atol=1e-6)
    np.testing.assert_allclose(float(output_loss), expected_output, rtol=1e-5)
    np.testing.assert_allclose(float(total), expected_total, rtol=1e-5)
    assert float(total) > float(output_loss)
    # A model read back from its .keras file trains the same way.
    path = str(tmp_path / "mix.keras")
    model.save(path)
    loaded = TrainingView(keras.saving.load_model(path))
    _, _, again = loaded(batch, lambda q: loss_fn(y, q), training=False)
    np.testing.assert_allclose(float(again), float(total), rtol=1e-5)


def test_plain_models_train_on_their_output_alone(rng):
    model = build("nextvlad")
    batch = frame_batch(rng)
    y = labels(rng, len(batch["num_frames"]))
    view = TrainingView(model)
    assert not view.has_auxiliary_losses
    p, output_loss, total = view(batch, lambda q: CrossEntropyLoss()(y, q), training=False)
    assert p.shape == (3, NUM_CLASSES)
    assert float(output_loss) == float(total)


def test_the_train_step_trains_through_the_view(rng, monkeypatch):
    import tensorflow as tf

    from frame_models import auxiliary
    from y8m.run.training.step import make_train_step

    calls = []

    class Recording(auxiliary.TrainingView):
        def __call__(self, *args, **kwargs):
            calls.append(self.has_auxiliary_losses)
            return super().__call__(*args, **kwargs)

    monkeypatch.setattr(auxiliary, "TrainingView", Recording)
    model = build("mix_nextvlad")
    batch = frame_batch(rng)
    y = labels(rng, len(batch["num_frames"]))
    strategy = tf.distribute.get_strategy()
    step = make_train_step(model, keras.optimizers.Adam(1e-3), strategy, clip_norm=1.0)
    before = [w.numpy().copy() for w in model.trainable_weights]
    step({k: tf.constant(v) for k, v in batch.items()}, tf.constant(y, tf.float32))
    assert calls and all(calls)
    changed = [not np.array_equal(a, w.numpy()) for a, w in zip(before, model.trainable_weights)]
    branch = [i for i, w in enumerate(model.trainable_weights) if w.path.startswith("branch_2")]
    assert branch and all(changed[i] for i in branch)
