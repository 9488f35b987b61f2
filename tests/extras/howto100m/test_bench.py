"""The bench compares like with like: its plain step is the model's step, written plainly."""

import json

import pytest

torch = pytest.importorskip("torch")

from extras.howto100m.bench import PlainStep, caption_words, step_gflop  # noqa: E402
from extras.howto100m.commands import Commands  # noqa: E402
from extras.howto100m.config import TrainConfig  # noqa: E402
from extras.howto100m.model import Net  # noqa: E402
from extras.howto100m.train import build_parts, train_step  # noqa: E402

TOL = dict(atol=1e-5, rtol=1e-5)


def config():
    return TrainConfig(captions="", features_2d="", word2vec="", output_dir="")


def small_batch(v=3, k=4, video_dim=10, we_dim=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    video = torch.rand(v * k, video_dim, generator=generator)
    text = caption_words(v * k, 20, we_dim, 4.0, generator)
    text[0] = 0  # one caption with no word
    text[1] = torch.randn(20, we_dim, generator=generator)  # one with all 20
    return {"video": video.view(v, k, -1), "text": text.view(v, k, 20, we_dim)}


def repeated_batch(v=3, k=6, pool=4, video_dim=10, we_dim=6, seed=0):
    """v videos x k pairs drawn with replacement from `pool` pairs per video."""
    generator = torch.Generator().manual_seed(seed)
    video = torch.rand(v * pool, video_dim, generator=generator)
    text = caption_words(v * pool, 20, we_dim, 4.0, generator)
    text[0] = 0  # a caption with no word
    text[1] = torch.randn(20, we_dim, generator=generator)  # one with all 20
    caption = torch.randint(0, pool, (v, k), generator=generator)
    caption[0, :3] = torch.tensor([0, 1, 0])  # the empty and the full caption, one of them twice
    rows = (torch.arange(v)[:, None] * pool + caption).flatten()
    return {
        "video": video[rows].view(v, k, -1),
        "text": text[rows].view(v, k, 20, we_dim),
        "caption": caption,
    }


def test_plain_step_equals_the_model_forward_loss_and_gradients():
    torch.manual_seed(0)
    net = Net(embd_dim=16, video_dim=10, we_dim=6)
    plain = PlainStep(net, config(), torch.device("cpu"))
    batch = small_batch()
    video, text = batch["video"].flatten(0, 1), batch["text"].flatten(0, 1)
    parts = build_parts(net, config(), torch.device("cpu"))

    sim = plain.similarity(video, text)
    torch.testing.assert_close(sim, net(video, text), **TOL)
    plain_loss = plain.loss(sim, 4)
    model_loss = parts.loss_fn(net(video, text), n_pair=4)
    torch.testing.assert_close(plain_loss, model_loss, **TOL)

    plain_loss.backward()
    model_loss.backward()
    model_grads = {n: p.grad for n, p in net.named_parameters() if p.requires_grad}
    assert model_grads.keys() == plain.params.keys()
    for name, param in plain.params.items():
        torch.testing.assert_close(param.grad, model_grads[name], **TOL, msg=name)


@pytest.mark.parametrize("make_batch", [small_batch, repeated_batch])
def test_plain_and_fast_steps_follow_the_same_trajectory(make_batch):
    # repeated_batch: pairs drawn twice, which the fast step embeds once.
    torch.manual_seed(0)
    net = Net(embd_dim=16, video_dim=10, we_dim=6)
    plain = PlainStep(net, config(), torch.device("cpu"))
    parts = build_parts(net, config(), torch.device("cpu"))
    for seed in range(3):
        batch = make_batch(seed=seed)
        torch.testing.assert_close(plain.step(batch), train_step(parts, batch), **TOL)
    for name, param in net.named_parameters():
        if param.requires_grad:
            torch.testing.assert_close(plain.params[name], param.detach(), **TOL, msg=name)


def test_plain_step_projects_every_slot():
    # The FLOP count the bench prints assumes it: the plain step's cost ignores padding.
    pairs, sizes = 8, {"embd_dim": 4, "we_dim": 3, "video_dim": 5}
    dense, packed = step_gflop(pairs, pairs * 20, sizes, 4), step_gflop(pairs, 0, sizes, 4)
    assert dense - packed == pytest.approx(2 * 2 * pairs * 20 * 3 * 4 / 1e9)


def test_random_captions_look_like_howto100m_ones():
    words = caption_words(4000, 20, 8, 4.0, torch.Generator().manual_seed(0))
    lengths = (words != 0).any(dim=-1).sum(dim=1).float()
    assert 3.7 < lengths.mean() < 4.3
    assert 0.08 < (lengths == 0).float().mean() < 0.15  # captions whose words were all dropped
    assert lengths.max() <= 20
    real = (words != 0).any(dim=-1)
    assert torch.equal(real, torch.arange(20) < lengths[:, None])  # padded after the words


def test_bench_prints_the_comparison_last_as_json(capsys):
    Commands().bench(
        embd_dim=16,
        video_dim=12,
        videos_per_batch=3,
        pairs_per_video=2,
        steps=2,
        warmup=0,
        eval_size=30,
        device="cpu",
    )
    lines = capsys.readouterr().out.strip().splitlines()
    figures = json.loads(lines[-1])
    for key in (
        "device",
        "device_name",
        "device_memory_gb",
        "train_step_s",
        "train_pairs_per_s",
        "embed_video_per_s",
        "embed_text_per_s",
        "eval_s",
        "eval_size",
        "plain_step_s",
        "fast_step_s",
        "packed_step_s",
        "packed_speedup_vs_plain",
        "distinct_pair_fraction",
        "captions_per_video",
        "speedup_vs_plain",
        "loss_max_abs_diff",
        "matmul_gflop_per_s",
    ):
        assert key in figures, key
    assert figures["device"] == "cpu" and figures["rounds"] == 2
    assert figures["loss_max_abs_diff"] < 1e-5
    assert figures["speedup_vs_plain"] > 0
    assert any(line.startswith("speedup vs plain") for line in lines[:-1])
    assert not any(line.lstrip().startswith("{") for line in lines[:-1])
