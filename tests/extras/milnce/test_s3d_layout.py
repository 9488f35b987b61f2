"""The channels-last S3D against the standard-layout one (the plain network the bench times),
kept freed memory, and bfloat16 autocast of the training step."""

import copy

import pytest

torch = pytest.importorskip("torch")

from extras.milnce import train as train_module  # noqa: E402
from extras.milnce.bench import _variants  # noqa: E402
from extras.milnce.config import TrainConfig  # noqa: E402
from extras.milnce.s3d import S3D, SelfGating  # noqa: E402
from extras.milnce.train import bf16_supported, build_parts, train_step  # noqa: E402
from extras.runtime import memory  # noqa: E402
from y8m.errors import UsageError  # noqa: E402

CL = torch.channels_last_3d


def _pair(space_to_depth: bool, dtype=torch.float32):
    torch.manual_seed(0)
    fast = S3D(space_to_depth=space_to_depth, num_embeddings=50).to(dtype)
    plain = copy.deepcopy(fast).set_memory_format(torch.contiguous_format)
    return fast, plain


def _stem_layout(model, video) -> list:
    seen = []
    hook = model.maxpool_2a.register_forward_hook(
        lambda _, args, out: seen.append((out.is_contiguous(memory_format=CL), out.is_contiguous()))
    )
    model(video)
    hook.remove()
    return seen


def _forward_backward(model, video):
    out = model(video)["video_embedding"]
    out.square().sum().backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    return out, grads


def test_the_trunk_runs_channels_last_and_the_plain_copy_does_not():
    fast, plain = _pair(False)
    fast.eval(), plain.eval()
    video = torch.rand(1, 3, 8, 64, 64)
    assert _stem_layout(fast, video) == [(True, False)]
    assert _stem_layout(plain, video) == [(False, True)]
    assert fast.conv_2b.conv1.weight.is_contiguous(memory_format=CL)
    assert plain.conv_2b.conv1.weight.is_contiguous()


@pytest.mark.parametrize("space_to_depth", [False, True])
def test_channels_last_training_forward_and_backward_equal_the_standard_layout(space_to_depth):
    # float64: in float32 batch statistics over 2x1x1 positions amplify rounding in both
    # layouts alike (both differ from float64 by up to 1e-3 at this size)
    fast, plain = _pair(space_to_depth, torch.float64)
    fast.train(), plain.train()
    video = torch.rand(2, 3, 8, 32, 32, dtype=torch.float64)
    out_fast, grads_fast = _forward_backward(fast, video)
    out_plain, grads_plain = _forward_backward(plain, video)
    torch.testing.assert_close(out_fast, out_plain, rtol=1e-5, atol=1e-5)
    assert grads_fast.keys() == grads_plain.keys() and len(grads_fast) > 100
    for name, grad in grads_fast.items():
        scale = grads_plain[name].abs().max().item() + 1e-12
        assert (grad - grads_plain[name]).abs().max().item() / scale < 1e-5, name
    for (name, a), b in zip(fast.named_buffers(), plain.buffers()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7, msg=name)


def _norm_error(grads: dict, exact: dict) -> float:
    diff = sum(float((grads[n].double() - exact[n]).square().sum()) for n in exact)
    return (diff / sum(float(g.square().sum()) for g in exact.values())) ** 0.5


def test_float32_channels_last_is_within_1e5_of_float64():
    fast, plain = _pair(False)
    fast.eval()
    exact = copy.deepcopy(plain).double().eval()
    video = torch.rand(2, 3, 8, 32, 32)
    out_fast, grads_fast = _forward_backward(fast, video)
    out_exact, grads_exact = _forward_backward(exact, video.double())
    scale = out_exact.abs().max().item()
    assert (out_fast.double() - out_exact).abs().max().item() / scale < 1e-5
    # all gradients together, relative to their norm (the stem's are 1e-10 and lose digits)
    assert _norm_error(grads_fast, grads_exact) < 1e-5


def test_gating_is_the_same_in_both_layouts():
    gate = SelfGating(6)
    x = torch.rand(2, 6, 3, 4, 5)
    standard = gate(x)
    channels_last = gate(x.contiguous(memory_format=CL))
    assert channels_last.is_contiguous(memory_format=CL)
    torch.testing.assert_close(channels_last, standard)


def test_state_dict_does_not_depend_on_the_layout():
    fast, plain = _pair(False)
    assert list(fast.state_dict()) == list(plain.state_dict())
    other = S3D(space_to_depth=False, num_embeddings=50)
    other.load_state_dict(plain.state_dict(), strict=True)
    assert other.conv1.conv1.weight.is_contiguous(memory_format=CL)  # load keeps the layout
    torch.testing.assert_close(other.conv1.conv1.weight, plain.conv1.conv1.weight)


def test_freed_memory_is_kept_and_released():
    try:
        assert memory.keep_freed_memory() is True  # glibc: the CI machines' libc
        assert memory.keeping_freed_memory()
        assert memory.release_freed_memory() is True
        assert not memory.keeping_freed_memory()
    finally:
        memory.keep_freed_memory()


def _config(**kw) -> TrainConfig:
    return TrainConfig(train_dir="", videos="", captions="", lr=1e-3, warmup_steps=0, **kw)


def _batch():
    gen = torch.Generator().manual_seed(1)
    return {
        "video": torch.randint(0, 256, (2, 3, 8, 32, 32), dtype=torch.uint8, generator=gen),
        "text": torch.randint(1, 50, (2, 2, 5), generator=gen),
    }


def test_bf16_is_refused_where_the_device_has_no_bfloat16(monkeypatch):
    monkeypatch.setattr(train_module, "bf16_supported", lambda device: False)
    model = S3D(space_to_depth=False, num_embeddings=50)
    with pytest.raises(UsageError, match="drop --bf16"):
        build_parts(model, _config(bf16=True), 1, torch.device("cpu"))


@pytest.mark.skipif(not bf16_supported(torch.device("cpu")), reason="CPU without bfloat16")
def test_bf16_step_runs_bfloat16_and_trains_float32_weights():
    torch.manual_seed(0)
    model = S3D(space_to_depth=False, num_embeddings=50)
    parts = build_parts(model, _config(bf16=True), 1, torch.device("cpu"))
    before = model.fc.weight.detach().clone()
    dtypes = []
    model.mixed_5c.register_forward_hook(lambda m, a, out: dtypes.append(out.dtype))
    loss = train_step(parts, _batch())
    assert dtypes == [torch.bfloat16] and loss.dtype == torch.float32 and loss.isfinite()
    assert model.fc.weight.dtype == torch.float32 and not torch.equal(model.fc.weight, before)


@pytest.mark.skipif(not bf16_supported(torch.device("cpu")), reason="CPU without bfloat16")
def test_bf16_embeddings_point_where_the_float32_ones_do():
    # Inference statistics: the batch statistics of a 2-clip training step at this size swing
    # the loss by tens of percent under 8-bit mantissas (0.05 of ~4 at the bench's 224 px).
    torch.manual_seed(0)
    model = S3D(space_to_depth=False, num_embeddings=50).eval()
    video = torch.rand(2, 3, 8, 64, 64)
    with torch.no_grad():
        fp32 = model(video)["video_embedding"]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(video)["video_embedding"].float()
    assert torch.nn.functional.cosine_similarity(fp32, bf16).min() > 0.99


def test_bench_variants():
    cpu = torch.device("cpu")
    assert _variants("off", False, cpu) == ("plain", "plain_kept", "fast")
    assert _variants("off", True, cpu)[-1] == "compiled"
    with pytest.raises(UsageError, match="auto, on or off"):
        _variants("maybe", False, cpu)
    if not bf16_supported(cpu):
        with pytest.raises(UsageError, match="no native bfloat16"):
            _variants("on", False, cpu)
    else:
        assert "bf16" in _variants("auto", False, cpu)
