"""The built-in training hooks: logs (TensorBoard, history.csv, the bar), the judged weights
(EMA, precise batch-norm statistics) and validation GAP."""

from __future__ import annotations

import time

from y8m.run import judged, rundir
from y8m.run.inference import validation_gap
from y8m.run.training.loop import Hook, TrainLoop


class LogHook(Hook):
    """Every `log_steps` steps: loss, learning rate and examples/s to TensorBoard, history.csv
    and the progress bar; the last step too when it falls between two records."""

    def __init__(self, train_dir: str, writer, schedule, log_steps: int):
        self.train_dir = train_dir
        self.writer = writer
        self.schedule = schedule
        self.log_steps = max(int(log_steps), 1)
        self._window_t = time.perf_counter()
        self._window_n = 0
        self.rate = 0.0

    def after_step(self, loop: TrainLoop, step: int, loss: float) -> None:
        import tensorflow as tf

        self._window_n += loop.global_batch
        if step % self.log_steps:
            return
        now = time.perf_counter()
        self.rate = self._window_n / max(now - self._window_t, 1e-9)
        self._window_t, self._window_n = now, 0
        lr = float(self.schedule(step))
        if loop.bar is not None:
            loop.bar.set_postfix(loss=f"{loss:.3f}", ex_s=f"{self.rate:.0f}")
        with self.writer.as_default(step=step):
            tf.summary.scalar("loss", loss)
            tf.summary.scalar("learning_rate", lr)
            tf.summary.scalar("examples_per_second", self.rate)
        rundir.append_history(
            self.train_dir,
            {"step": step, "loss": loss, "learning_rate": lr, "examples_per_s": self.rate},
        )

    def at_end(self, loop: TrainLoop, step: int) -> None:
        if step > loop.start_step and step % self.log_steps:
            rundir.append_history(
                self.train_dir, {"step": step, "loss": loop.last_loss, "examples_per_s": self.rate}
            )


class JudgedWeightsHook(Hook):
    """Before each validation and at the end: puts the weights the run is judged by (the EMA
    when --ema_decay, else the trained ones) into a copy of the model, re-estimates its
    batch-norm statistics on --precise_bn_batches training batches, and hands it to the
    hooks after it and to the end-of-run artefacts as `loop.judged_net`. The training model
    and so the resumable checkpoint keep the training state."""

    def __init__(self, config: dict, num_batches: int, seed: int = 0, progress: bool = True):
        self.config = config
        self.num_batches = int(num_batches)
        self.seed = int(seed)
        self.progress = progress
        self._copy = None
        self._done_at = None

    def _refresh(self, loop: TrainLoop, step: int) -> None:
        if self._done_at == step:  # the last step was also a validation step
            return
        self._done_at = step
        state = loop.state
        if self.num_batches <= 0 and judged.ema_averages(state.optimizer) is None:
            loop.judged_net = state.net
            return
        self._copy = judged.judged_copy(self.config, state.net, state.optimizer, self._copy)
        figures = judged.reestimate(
            self._copy, self.config, self.num_batches, self.seed + step, self.progress
        )
        loop.results["precise_bn_batches"] = figures["batches"]
        loop.results["precise_bn_seconds"] = round(figures["seconds"], 2)
        loop.judged_net = self._copy

    def at_validation(self, loop: TrainLoop, step: int) -> None:
        self._refresh(loop, step)

    def at_end(self, loop: TrainLoop, step: int) -> None:
        self._refresh(loop, step)


class ValidationHook(Hook):
    """GAP@20 on the first `max_videos` validation videos: at each validation point and at the
    end (the end's figure is the run's `gap`)."""

    def __init__(self, config: dict, pattern: str, max_videos: int, train_dir: str, writer):
        self.config = config
        self.pattern = pattern
        self.max_videos = int(max_videos)
        self.train_dir = train_dir
        self.writer = writer
        self._last = None  # (step, gap) of the latest validation

    def _gap(self, loop: TrainLoop, step: int) -> float:
        import tensorflow as tf

        if self._last and self._last[0] == step:
            return self._last[1]

        gap = validation_gap(loop.judged_net, self.config, self.pattern, self.max_videos)
        rundir.append_history(self.train_dir, {"step": step, "validation_gap": gap})
        with self.writer.as_default(step=step):
            tf.summary.scalar("validation_gap", gap)
        self._last = (step, gap)
        return gap

    def at_validation(self, loop: TrainLoop, step: int) -> None:
        loop.write(f"step {step}: validation GAP {self._gap(loop, step):.4f}")

    def at_end(self, loop: TrainLoop, step: int) -> None:
        loop.results["gap"] = self._gap(loop, step)
        print(f"validation GAP {loop.results['gap']:.4f}")
