"""The training loop and its hook points.

The loop owns what every run needs: drawing batches, the step, the NaN stop, periodic
checkpoints and the progress bar. Everything else (logs, validation, and later EMA or
precise batch-norm statistics) is a `Hook`, called at four points:

    after_step(loop, step, loss)   every step, after the update
    at_checkpoint(loop, step)      after a periodic checkpoint is written
    at_validation(loop, step)      every --validate_steps steps (hooks run in list order, so a
                                   hook that prepares the weights goes before the validation)
    at_end(loop, step)             once, after the last step and its checkpoint
"""

from __future__ import annotations

import math
import time

from y8m.errors import UsageError
from y8m.run import rundir


class Hook:
    """A no-op at every point; subclasses override the points they need."""

    def after_step(self, loop: TrainLoop, step: int, loss: float) -> None:
        pass

    def at_checkpoint(self, loop: TrainLoop, step: int) -> None:
        pass

    def at_validation(self, loop: TrainLoop, step: int) -> None:
        pass

    def at_end(self, loop: TrainLoop, step: int) -> None:
        pass


class TrainLoop:
    """Runs `step_fn` over `batches` until `total_steps`, calling `hooks` at their points.

    Attributes:
        state: the `TrainState` (model, optimizer, checkpoint manager).
        last_loss: the latest step's label loss.
        examples: examples trained on in this process' run (resumed steps not counted).
        results: figures hooks report (e.g. `gap`), returned by `train`.
    """

    def __init__(
        self,
        state,
        step_fn,
        batches,
        *,
        total_steps: int,
        global_batch: int,
        checkpoint_steps: int,
        validate_steps: int = 0,
        hooks: list[Hook] = (),
        train_dir: str,
        data_pattern: str,
        bar=None,
    ):
        self.state = state
        self.step_fn = step_fn
        self.batches = batches
        self.total_steps = int(total_steps)
        self.global_batch = int(global_batch)
        self.checkpoint_steps = max(int(checkpoint_steps), 1)
        self.validate_steps = int(validate_steps or 0)
        self.hooks = list(hooks)
        self.train_dir = train_dir
        self.data_pattern = data_pattern
        self.bar = bar
        self.start_step = state.step
        self.last_loss = float("nan")
        self.examples = 0
        self.results: dict = {}
        self.seconds = 0.0
        # The model validation and model.keras use; a hook may replace it with a copy that
        # holds averaged weights or re-estimated batch-norm statistics.
        self.judged_net = state.net

    def run(self) -> None:
        """Trains to `total_steps` (or the end of the data); saves and re-raises on Ctrl-C."""
        t0 = time.perf_counter()
        try:
            self._steps()
        except KeyboardInterrupt:
            self._close_bar()
            self.state.save()
            print(f"interrupted: saved step {self.state.step}; re-run the same command to resume")
            raise
        self._close_bar()
        self.seconds = time.perf_counter() - t0
        self.state.save()
        for hook in self.hooks:
            hook.at_end(self, self.state.step)

    def _steps(self) -> None:
        import tensorflow as tf

        from y8m.data.readers import data_error

        iterator = iter(self.batches)
        while self.state.step < self.total_steps:
            try:
                batch = next(iterator)  # (inputs, labels[, label_weights])
            except StopIteration:
                break
            except tf.errors.OpError as err:
                raise data_error(err, self.data_pattern) from None
            loss = float(self.step_fn(*batch))
            step = self.state.step
            self._check_finite(loss, step)
            self.last_loss = loss
            self.examples += self.global_batch
            if self.bar is not None:
                self.bar.update(1)
            for hook in self.hooks:
                hook.after_step(self, step, loss)
            validating = self.validate_steps and step % self.validate_steps == 0
            # A validated step is checkpointed too, so `--checkpoint=best` can find it.
            if step % self.checkpoint_steps == 0 or validating:
                self.state.manager.save(checkpoint_number=step)
                for hook in self.hooks:
                    hook.at_checkpoint(self, step)
            if validating:
                for hook in self.hooks:
                    hook.at_validation(self, step)

    def _check_finite(self, loss: float, step: int) -> None:
        if not math.isfinite(loss):
            kept = rundir.latest_checkpoint(self.train_dir) or "none"
            raise UsageError(
                f"loss became {loss} at step {step}; stopped without saving, the last good "
                f"checkpoint ({kept}) is kept: lower --base_learning_rate"
            )

    def write(self, message: str) -> None:
        """Prints a line without breaking the progress bar."""
        if self.bar is not None:
            self.bar.write(message)
        else:
            print(message)

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
