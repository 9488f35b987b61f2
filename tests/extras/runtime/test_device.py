import pytest

torch = pytest.importorskip("torch")

from extras.runtime import distributed  # noqa: E402
from extras.runtime.device import pick_device  # noqa: E402
from y8m.errors import UsageError  # noqa: E402


def test_auto_and_cpu():
    assert pick_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device("auto").type == expected


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "", 3])
def test_unknown_device_is_a_usage_error(name):
    with pytest.raises(UsageError, match="unknown device"):
        pick_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_cuda_without_a_gpu_is_a_usage_error():
    with pytest.raises(UsageError, match="no CUDA GPU"):
        pick_device("cuda")
    with pytest.raises(UsageError, match="no CUDA GPU"):
        distributed.setup("cuda:0")


def test_without_torchrun_a_run_is_one_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    place = distributed.setup("cpu")
    assert (place.rank, place.world_size, place.enabled, place.is_main) == (0, 1, False, True)
    assert distributed.all_reduce_sum(3.0, place) == 3.0
    assert distributed.average(3.0, place) == 3.0
    distributed.barrier(place)  # no-op
    distributed.teardown(place)
    x = torch.ones(2)
    assert distributed.all_gather_with_grad(x) is x
