"""The distributed loss on 2 gloo processes equals the single-process loss on the global batch."""

import os
import socket

import pytest

torch = pytest.importorskip("torch")

import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

from extras.milnce import MILNCELoss, all_gather_with_grad  # noqa: E402

WORLD_SIZE = 2
B, K, D_IN, D = 3, 2, 5, 4  # per-rank clips, candidates, input size, embedding size


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _global_batch(variant):
    """Inputs of all ranks, two small linear 'encoders', and the single-process reference."""
    generator = torch.Generator().manual_seed(7)
    video_in = torch.randn(WORLD_SIZE * B, D_IN, generator=generator, dtype=torch.float64)
    text_in = torch.randn(WORLD_SIZE * B * K, D_IN, generator=generator, dtype=torch.float64)
    encoder = torch.nn.ModuleDict(
        {"video": torch.nn.Linear(D_IN, D), "text": torch.nn.Linear(D_IN, D)}
    ).double()
    with torch.no_grad():
        for p in encoder.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64))
    return video_in, text_in, encoder


class _Both(torch.nn.Module):
    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, video, text):
        return self.encoder["video"](video), self.encoder["text"](text)


def _worker(rank, port, variant, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE)
    try:
        video_in, text_in, encoder = _global_batch(variant)
        model = torch.nn.parallel.DistributedDataParallel(_Both(encoder))
        video, text = model(
            video_in[rank * B : (rank + 1) * B], text_in[rank * B * K : (rank + 1) * B * K]
        )
        loss = MILNCELoss(variant)(all_gather_with_grad(video), all_gather_with_grad(text))
        loss.backward()  # DDP averages the parameter gradients over the two ranks
        grads = {name: p.grad.clone() for name, p in encoder.named_parameters()}
        torch.save({"loss": loss.detach(), "grads": grads}, os.path.join(out_dir, f"{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("variant", ["released", "paper"])
def test_two_process_loss_and_gradients_equal_single_process(tmp_path, variant):
    # "spawn", not "fork": the suite imports TensorFlow in this process, and forking a process
    # that runs TensorFlow's threads can deadlock the children.
    mp.start_processes(
        _worker,
        args=(_free_port(), variant, str(tmp_path)),
        nprocs=WORLD_SIZE,
        join=True,
        start_method="spawn",
    )
    video_in, text_in, encoder = _global_batch(variant)
    loss = MILNCELoss(variant)(encoder["video"](video_in), encoder["text"](text_in))
    loss.backward()
    for rank in range(WORLD_SIZE):
        result = torch.load(tmp_path / f"{rank}.pt")
        torch.testing.assert_close(result["loss"], loss.detach(), rtol=1e-12, atol=1e-12)
        for name, p in encoder.named_parameters():
            torch.testing.assert_close(result["grads"][name], p.grad, rtol=1e-10, atol=1e-12)


def test_gather_is_identity_without_a_process_group():
    x = torch.randn(2, 3)
    assert all_gather_with_grad(x) is x
