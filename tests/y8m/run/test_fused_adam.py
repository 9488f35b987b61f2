"""FusedAdam is Keras' Adam: same weights, slots, EMA and checkpoints, one kernel per update."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from y8m.run.training.fused_adam import FusedAdam  # noqa: E402
from y8m.run.training.state import make_optimizer  # noqa: E402

SHAPES = [(64, 32), (32,), (7, 5, 3)]


def variables(seed=0):
    rng = np.random.default_rng(seed)
    return [keras.Variable(rng.standard_normal(s).astype("float32")) for s in SHAPES]


def gradients(step):
    rng = np.random.default_rng(100 + step)
    # Sizes from 1e-4 to 10: the sqrt(v) + epsilon denominator is exercised at both ends.
    return [
        tf.constant((rng.standard_normal(s) * 10.0 ** rng.uniform(-4, 1)).astype("float32"))
        for s in SHAPES
    ]


def train(optimizer, steps=6, seed=0):
    weights = variables(seed)
    optimizer.build(weights)
    apply = tf.function(lambda grads: optimizer.apply(grads, weights))
    for step in range(steps):
        apply(gradients(step))
    return weights


def assert_same(a, b):
    for x, y in zip(a, b):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"learning_rate": 0.1, "beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-3},
        {"use_ema": True, "ema_momentum": 0.9},
        {"weight_decay": 0.01},
    ],
)
def test_fused_adam_follows_keras_adam(options):
    fused, plain = FusedAdam(**options), keras.optimizers.Adam(**options)
    assert_same(train(fused), train(plain))
    assert_same(fused.variables, plain.variables)  # m, v, the step and any EMA


def test_sparse_gradients_and_amsgrad_take_keras_path():
    for options in ({}, {"amsgrad": True}):
        fused, plain = FusedAdam(**options), keras.optimizers.Adam(**options)
        results = []
        for optimizer in (fused, plain):
            table = keras.Variable(np.arange(40, dtype="float32").reshape(10, 4))
            optimizer.build([table])
            for step in range(3):
                rows = tf.constant([1, 4, 4, 7 - step])
                grad = tf.IndexedSlices(tf.ones([4, 4]) * (step + 1), rows, tf.constant([10, 4]))
                optimizer.apply([grad], [table])
            results.append([table])
        assert_same(*results)


def test_the_update_runs_one_compiled_loop_per_variable():
    optimizer = FusedAdam()
    weights = variables()
    optimizer.build(weights)
    step = tf.function(lambda grads: optimizer.apply(grads, weights))
    ops = step.get_concrete_function(gradients(0)).graph.get_operations()
    calls = [op for op in ops if op.type == "StatefulPartitionedCall"]
    assert len(calls) == len(SHAPES)
    assert all(op.node_def.attr["_XlaMustCompile"].b for op in calls)  # XLA fuses each
    assert not {"Sqrt", "Square", "RealDiv"} & {op.type for op in ops}  # none left outside


def test_checkpoints_move_between_keras_adam_and_fused_adam(tmp_path):
    for first, second in ((keras.optimizers.Adam, FusedAdam), (FusedAdam, keras.optimizers.Adam)):
        optimizer, weights = first(), None
        weights = train(optimizer, steps=3)
        path = tf.train.Checkpoint(weights=weights, optimizer=optimizer).save(str(tmp_path / "c"))
        restored_opt, restored = second(), variables(seed=9)
        restored_opt.build(restored)
        tf.train.Checkpoint(weights=restored, optimizer=restored_opt).restore(path)
        assert_same(restored, weights)
        assert_same(restored_opt.variables, optimizer.variables)


def test_make_optimizer_is_fused_unless_asked():
    train_flags = {
        "learning_rate_decay_examples": 4000000,
        "base_learning_rate": 0.01,
        "learning_rate_decay": 0.95,
    }
    assert isinstance(make_optimizer(train_flags, 80)[0], FusedAdam)
    plain = make_optimizer(train_flags, 80, fused=False)[0]
    assert type(plain) is keras.optimizers.Adam
