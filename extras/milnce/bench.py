"""Throughput of MIL-NCE training: the training step (the one `train` runs), the BatchNorm
re-estimation before checkpoints, and clip decoding from generated mp4s."""

from __future__ import annotations

import json
import os
import tempfile
import time

import numpy as np
import torch
from torch.utils.data import DataLoader

from extras.milnce.captions import CaptionStore
from extras.milnce.checkpoint import build_model
from extras.milnce.config import ModelConfig, TrainConfig
from extras.milnce.data import NarratedClips, collate_narrated
from extras.milnce.text import Tokenizer
from extras.milnce.toy import make_toy_dataset
from extras.milnce.train import build_parts, reestimate_bn, train_step
from extras.runtime.device import pick_device
from extras.runtime.timing import time_calls


def bench_model(
    batch_size: int = 4,
    num_frames: int = 16,
    size: int = 224,
    num_candidates: int = 4,
    max_words: int = 20,
    steps: int = 3,
    warmup: int = 1,
    space_to_depth: bool = False,
    device: str = "auto",
    precise_bn_batches: int = 5,
) -> dict:
    """Clips/s of the training step itself (`train.train_step`: S3D + text forward, MIL-NCE,
    backward, Adam, schedule) on a random batch as the loader gives it: uint8 clips
    [batch_size, 3, num_frames, size, size] and [batch_size, num_candidates, max_words] words.

    Then seconds per 200 batches of BatchNorm re-estimation (`train.reestimate_bn`, what
    `--precise_bn_batches=200` adds before each checkpoint, decoding not included), timed over
    `precise_bn_batches` batches of that shape and scaled to 200 (0 skips it)."""
    torch_device = pick_device(device)
    model = build_model(ModelConfig(space_to_depth=space_to_depth, num_embeddings=10_000))
    config = TrainConfig(train_dir="", videos="", captions="", lr=1e-4, warmup_steps=0)
    parts = build_parts(model, config, total_steps=warmup + steps, device=torch_device)
    model.train()
    batch = {
        "video": torch.randint(0, 256, (batch_size, 3, num_frames, size, size), dtype=torch.uint8),
        "text": torch.randint(0, 10_000, (batch_size, num_candidates, max_words)),
    }
    if torch_device.type == "cuda":  # the training loader pins its batches too
        batch = {name: tensor.pin_memory() for name, tensor in batch.items()}
    timings = time_calls(lambda: train_step(parts, batch), steps, warmup, torch_device)
    seconds = float(np.median(timings))
    figures = {
        "train_clips_per_s": batch_size / seconds,
        "train_step_s": seconds,
        "device": str(torch_device),
        "precise_bn_batches": precise_bn_batches,
        "precise_bn_s_per_200_batches": None,
    }
    if precise_bn_batches > 0:
        batches = [batch] * precise_bn_batches
        (bn_seconds,) = time_calls(
            lambda: reestimate_bn(model, batches, precise_bn_batches, torch_device, False),
            steps=1,
            warmup=0,
            device=torch_device,
        )
        figures["precise_bn_s_per_200_batches"] = bn_seconds / precise_bn_batches * 200
    return figures


def bench_loader(
    batch_size: int = 4,
    num_frames: int = 16,
    size: int = 224,
    fps: float = 5.0,
    num_videos: int = 16,
    num_workers: int = 2,
    batches: int = 8,
    video_height: int = 256,
    video_width: int = 320,
    video_seconds: float = 8.0,
    video_fps: int = 25,
) -> dict:
    """Decoded clips/s of the training DataLoader on generated mp4s (min side 256 by default,
    like the preprocessed HowTo100M videos), `batches` batches after one warm-up batch."""
    with tempfile.TemporaryDirectory(prefix="milnce-bench-") as tmp:
        paths = make_toy_dataset(
            tmp,
            num_videos=num_videos,
            seconds=video_seconds,
            fps=video_fps,
            height=video_height,
            width=video_width,
        )
        videos = sorted(os.path.join(paths["videos"], n) for n in os.listdir(paths["videos"]))
        dataset = NarratedClips(
            videos,
            CaptionStore(paths["captions"]),
            Tokenizer(["red", "green", "blue"], max_words=20),
            num_frames=num_frames,
            fps=fps,
            size=size,
            min_time=num_frames / fps,
        )
        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=True,
            num_workers=num_workers,
            collate_fn=collate_narrated,
            drop_last=True,
        )
        clips, started, done, skipped = 0, None, 0, 0
        epoch = 0
        while done <= batches:
            dataset.set_epoch(epoch)
            for batch in loader:
                if started is None:  # exclude worker start-up and the first batch
                    started = time.perf_counter()
                else:
                    clips += batch["video"].shape[0]
                skipped += batch["skipped"]
                done += 1
                if done > batches:
                    break
            epoch += 1
        seconds = time.perf_counter() - started
    return {
        "loader_clips_per_s": clips / seconds if seconds > 0 else 0.0,
        "loader_skipped": skipped,
    }


def run_bench(
    batch_size: int = 4,
    num_frames: int = 16,
    size: int = 224,
    steps: int = 3,
    warmup: int = 1,
    space_to_depth: bool = False,
    device: str = "auto",
    num_videos: int = 16,
    num_workers: int = 2,
    loader_batches: int = 8,
    threads: int = 0,
    video_height: int = 256,
    video_width: int = 320,
    video_seconds: float = 8.0,
    precise_bn_batches: int = 5,
) -> dict:
    """Runs the measurements, prints a table and, last, one JSON line of the figures."""
    if threads:
        torch.set_num_threads(threads)
    figures = {
        **bench_model(
            batch_size=batch_size,
            num_frames=num_frames,
            size=size,
            steps=steps,
            warmup=warmup,
            space_to_depth=space_to_depth,
            device=device,
            precise_bn_batches=precise_bn_batches,
        ),
        **bench_loader(
            batch_size=batch_size,
            num_frames=num_frames,
            size=size,
            num_videos=num_videos,
            num_workers=num_workers,
            batches=loader_batches,
            video_height=video_height,
            video_width=video_width,
            video_seconds=video_seconds,
        ),
        "batch_size": batch_size,
        "num_frames": num_frames,
        "video_size": size,
        "space_to_depth": space_to_depth,
        "num_workers": num_workers,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    rows = [
        ("device", figures["device"]),
        (
            f"S3D train step, {batch_size}x{num_frames}x{size}x{size} (clips/s)",
            f"{figures['train_clips_per_s']:.2f}",
        ),
        ("S3D train step (s/step)", f"{figures['train_step_s']:.3f}"),
        (
            f"precise BN, {precise_bn_batches} batches timed (s per 200 batches)",
            "-"
            if figures["precise_bn_s_per_200_batches"] is None
            else f"{figures['precise_bn_s_per_200_batches']:.1f}",
        ),
        (
            f"loader, {num_workers} workers (decoded clips/s)",
            f"{figures['loader_clips_per_s']:.2f}",
        ),
    ]
    width = max(len(name) for name, _ in rows) + 2
    print(f"{'measure':<{width}}{'value':>12}")
    for name, value in rows:
        print(f"{name:<{width}}{value:>12}")
    print(json.dumps(figures))
    return figures
