import pytest

torch = pytest.importorskip("torch")

from extras.runtime.hooks import POINTS, Hooks  # noqa: E402
from extras.runtime.timing import Throughput, time_calls  # noqa: E402


def test_hooks_run_in_order_with_their_details():
    seen = []
    hooks = Hooks(after_step=lambda run, loss: seen.append(("a", run, loss)))
    hooks.add("after_step", lambda run, loss: seen.append(("b", run, loss)))
    hooks("after_step", "run", loss=1.0)
    hooks("at_end", "run", summary={})  # nothing attached
    assert seen == [("a", "run", 1.0), ("b", "run", 1.0)]
    assert set(POINTS) == {"after_step", "after_epoch", "at_checkpoint", "at_restore", "at_end"}
    with pytest.raises(ValueError, match="unknown hook point"):
        Hooks(before_step=print)


def test_time_calls_times_only_the_steps_after_warmup():
    calls = []
    timings = time_calls(lambda: calls.append(1), steps=3, warmup=2, device=torch.device("cpu"))
    assert len(calls) == 5 and len(timings) == 3 and all(t >= 0 for t in timings)


def test_throughput_counts_items_over_timed_stretches():
    speed = Throughput()
    assert speed.per_s() is None
    speed.start()
    speed.add(10)
    speed.add(5)
    assert speed.items == 15 and speed.seconds > 0 and speed.per_s() > 0
