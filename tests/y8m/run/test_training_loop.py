"""The training loop's hook points, and what `train` leaves behind it (dtype policy, flags)."""

import pytest

from y8m.errors import UsageError
from y8m.run.training.loop import Hook, TrainLoop


class _Manager:
    def __init__(self):
        self.saved = []
        self.latest_checkpoint = None

    def save(self, checkpoint_number):
        self.saved.append(checkpoint_number)
        self.latest_checkpoint = f"ckpt-{checkpoint_number}"


class _State:
    """A stand-in TrainState: the step counts calls of the step function."""

    def __init__(self, step=0):
        self.step = step
        self.net = None
        self.manager = _Manager()

    def save(self):
        if self.manager.latest_checkpoint != f"ckpt-{self.step}":
            self.manager.save(self.step)


class _Recorder(Hook):
    def __init__(self, name, calls):
        self.name, self.calls = name, calls

    def after_step(self, loop, step, loss):
        self.calls.append((self.name, "step", step, loss))

    def at_checkpoint(self, loop, step):
        self.calls.append((self.name, "checkpoint", step))

    def at_validation(self, loop, step):
        self.calls.append((self.name, "validation", step))

    def at_end(self, loop, step):
        self.calls.append((self.name, "end", step))


def _loop(state, losses, hooks, **kw):
    def step_fn(inputs, labels):
        state.step += 1
        return losses[state.step - 1]

    options = dict(total_steps=len(losses), global_batch=4, checkpoint_steps=2, validate_steps=3)
    options.update(kw)
    return TrainLoop(
        state,
        step_fn,
        [(None, None)] * 100,
        hooks=hooks,
        train_dir="unused",
        data_pattern="unused",
        **options,
    )


def test_hooks_are_called_at_their_points_in_order():
    calls = []
    state = _State()
    loop = _loop(state, [1.0, 0.9, 0.8, 0.7], [_Recorder("a", calls), _Recorder("b", calls)])
    loop.run()
    points = [(c[0], c[1], c[2]) for c in calls]
    assert points == [
        ("a", "step", 1), ("b", "step", 1),
        ("a", "step", 2), ("b", "step", 2), ("a", "checkpoint", 2), ("b", "checkpoint", 2),
        ("a", "step", 3), ("b", "step", 3), ("a", "checkpoint", 3), ("b", "checkpoint", 3),
        ("a", "validation", 3), ("b", "validation", 3),
        ("a", "step", 4), ("b", "step", 4), ("a", "checkpoint", 4), ("b", "checkpoint", 4),
        ("a", "end", 4), ("b", "end", 4),
    ]  # fmt: skip
    # A validated step is checkpointed too; the end does not save step 4 twice.
    assert state.manager.saved == [2, 3, 4]
    assert loop.last_loss == 0.7 and loop.examples == 16


def test_resumed_loop_counts_only_its_own_steps_and_stops_at_the_end_of_data():
    state = _State(step=2)
    loop = _loop(state, [9, 9, 0.5, 0.4, 0.3], [], total_steps=10)
    loop.batches = [(None, None)] * 3
    loop.run()
    assert state.step == 5 and loop.start_step == 2 and loop.examples == 12
    assert state.manager.saved == [3, 4, 5]  # step 3 was validated


def test_a_nan_loss_stops_without_saving(tmp_path):
    state = _State()
    loop = _loop(state, [1.0, float("nan"), 0.5], [], checkpoint_steps=1)
    loop.train_dir = str(tmp_path)
    with pytest.raises(UsageError, match="loss became nan at step 2"):
        loop.run()
    assert state.manager.saved == [1]


def test_mixed_precision_does_not_leak_and_unknown_hparams_are_errors(synth_dir, tmp_path):
    import keras

    from y8m.run.train import train

    pattern = str(synth_dir / "frame" / "train*.tfrecord")
    common = dict(
        train_data_pattern=pattern, batch_size=8, max_steps=1, num_classes=64, progress=False
    )
    before = keras.mixed_precision.global_policy().name
    train(
        model="average_logistic", train_dir=str(tmp_path / "bf16"), mixed_precision=True, **common
    )
    assert keras.mixed_precision.global_policy().name == before == "float32"
    with pytest.raises(UsageError, match="'lstm' has no option.*cluster_size"):
        train(model="lstm", train_dir=str(tmp_path / "lstm"), cluster_size=4, **common)
    assert not (tmp_path / "lstm").exists()  # refused before anything was written


def test_bench_train_times_the_step_train_runs(monkeypatch, capsys):
    from y8m.cli.bench import train as bench
    from y8m.run.training import step

    made = []
    real = step.make_train_step

    def spy(*args, **kwargs):
        made.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(step, "make_train_step", spy)
    bench.bench_train(
        model="average_logistic", batch_size=4, num_classes=16, frames=5, steps=1, warmup=1,
        matmul_size=64,
    )  # fmt: skip
    assert made and made[0]["clip_norm"] == 1.0  # train's default clipping, not a bare step
