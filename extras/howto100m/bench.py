"""`y8m bench howto100m`: training pairs/s, embedding throughput and eval time on random data."""

from __future__ import annotations

import json
import platform
import resource
import time

import torch

from extras.howto100m.config import TrainConfig
from extras.howto100m.model import Net
from extras.howto100m.retrieval import retrieval_metrics
from extras.howto100m.train import build_parts, train_step
from extras.runtime.device import pick_device
from extras.runtime.timing import sync, time_calls


def _random_batch(num: int, video_dim: int, max_words: int, we_dim: int, device, generator):
    video = torch.rand(num, video_dim, generator=generator).to(device)
    text = torch.randn(num, max_words, we_dim, generator=generator)
    # Captions average ~4 kept words (thesis 5.3.2): pad the rest as the loader does.
    lengths = torch.randint(1, max_words + 1, (num, 1), generator=generator).clamp(max=8)
    text = text * (torch.arange(max_words)[None, :] < lengths)[..., None]
    return video, text.to(device)


def run_bench(
    embd_dim: int = 4096,
    video_dim: int = 4096,
    we_dim: int = 300,
    max_words: int = 20,
    videos_per_batch: int = 32,
    pairs_per_video: int = 64,
    steps: int = 3,
    warmup: int = 1,
    embed_batch: int = 2048,
    embed_batches: int = 3,
    eval_size: int = 10_000,
    chunk_size: int = 1024,
    device: str = "auto",
    seed: int = 0,
) -> dict:
    """Times the training step (`train.train_step`), embedding and a full ranking; returns the figures.

    Returns:
        {"device", "train_pairs_per_s", "train_step_s", "embed_video_per_s",
        "embed_text_per_s", "eval_s", "eval_size", ...}.
    """
    dev = pick_device(device)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = Net(embd_dim=embd_dim, video_dim=video_dim, we_dim=we_dim)
    # The training step itself, with the training defaults (Adam 1e-4, margin 0.1, p = 0.5).
    config = TrainConfig(captions="", features_2d="", word2vec="", output_dir="")
    parts = build_parts(net, config, dev)
    pairs = videos_per_batch * pairs_per_video
    video, text = _random_batch(pairs, video_dim, max_words, we_dim, torch.device("cpu"), generator)
    batch = {  # as the loader gives it: v videos x k pairs
        "video": video.view(videos_per_batch, pairs_per_video, video_dim),
        "text": text.view(videos_per_batch, pairs_per_video, max_words, we_dim),
    }
    if dev.type == "cuda":  # the training loader pins its batches too
        batch = {name: tensor.pin_memory() for name, tensor in batch.items()}
    step_times = time_calls(lambda: train_step(parts, batch), steps, warmup, dev)
    step_s = sum(step_times) / len(step_times)

    net.eval()
    video, text = _random_batch(embed_batch, video_dim, max_words, we_dim, dev, generator)
    timings = {}
    with torch.no_grad():
        for name, fn, x in (("video", net.embed_video, video), ("text", net.embed_text, text)):
            fn(x)
            sync(dev)
            tick = time.perf_counter()
            for _ in range(embed_batches):
                fn(x)
            sync(dev)
            timings[name] = embed_batch * embed_batches / (time.perf_counter() - tick)

    emb_text = torch.nn.functional.normalize(
        torch.randn(eval_size, embd_dim, generator=generator), dim=1
    )
    emb_video = torch.nn.functional.normalize(
        emb_text + 0.5 * torch.randn(eval_size, embd_dim, generator=generator), dim=1
    )
    sync(dev)
    tick = time.perf_counter()
    retrieval_metrics(emb_text.to(dev), emb_video.to(dev), chunk_size, dev)
    sync(dev)
    eval_s = time.perf_counter() - tick

    figures = {
        "device": str(dev) if dev.type == "cpu" else torch.cuda.get_device_name(dev),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "embd_dim": embd_dim,
        "video_dim": video_dim,
        "videos_per_batch": videos_per_batch,
        "pairs_per_video": pairs_per_video,
        "train_step_s": step_s,
        "train_pairs_per_s": pairs / step_s,
        "embed_video_per_s": timings["video"],
        "embed_text_per_s": timings["text"],
        "eval_size": eval_size,
        "eval_s": eval_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if dev.type == "cuda":
        figures["peak_gpu_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
    return figures


def print_report(figures: dict) -> None:
    """The human table, then the figures as one JSON line (last)."""
    rows = [
        ("device", f"{figures['device']} ({platform.machine()}, {figures['threads']} threads)"),
        ("model", f"{figures['video_dim']}-d clips -> {figures['embd_dim']}-d embedding"),
        ("batch", f"v={figures['videos_per_batch']} videos x k={figures['pairs_per_video']} pairs"),
        ("train step", f"{figures['train_step_s']:.3f} s"),
        ("train pairs/s", f"{figures['train_pairs_per_s']:,.0f}"),
        ("embed video/s", f"{figures['embed_video_per_s']:,.0f}"),
        ("embed text/s", f"{figures['embed_text_per_s']:,.0f}"),
        (
            f"eval {figures['eval_size']}x{figures['eval_size']}",
            f"{figures['eval_s']:.2f} s (both directions)",
        ),
        ("peak RSS", f"{figures['peak_rss_mb']:,.0f} MB"),
    ]
    if "peak_gpu_mb" in figures:
        rows.append(("peak GPU memory", f"{figures['peak_gpu_mb']:,.0f} MB"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(json.dumps(figures))
