"""Throughput of MIL-NCE training: the training step (the one `train` runs), the BatchNorm
re-estimation before checkpoints, and clip decoding from generated mp4s."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import statistics
import tempfile
import time

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from extras.milnce.captions import CaptionStore
from extras.milnce.checkpoint import build_model
from extras.milnce.config import ModelConfig, TrainConfig
from extras.milnce.data import NarratedClips, collate_narrated
from extras.milnce.text import Tokenizer
from extras.milnce.toy import make_toy_dataset
from extras.milnce.train import build_parts, reestimate_bn, train_step
from extras.runtime.device import bf16_supported, describe_device, pick_device
from extras.runtime.memory import keep_freed_memory, keeping_freed_memory, release_freed_memory
from extras.runtime.timing import sync, time_calls
from y8m.errors import UsageError

# The variants of the training step timed in every round, in order. "plain" is the network as
# the released MIL-NCE code writes it (NCDHW tensors, torch's default Adam) in a process with
# glibc's default malloc; "plain_kept" adds only the kept freed memory, "fast" (what `train`
# runs) the channels-last layout and the fused Adam too, "bf16" bfloat16 autocast on top,
# "compiled" torch.compile of the fast network.
VARIANTS = ("plain", "plain_kept", "fast", "bf16", "compiled")


def _variant_parts(variant: str, model, config: TrainConfig, total_steps: int, device):
    net = copy.deepcopy(model)
    if variant.startswith("plain"):
        net.set_memory_format(torch.contiguous_format)
    parts = build_parts(
        net,
        dataclasses.replace(config, bf16=variant == "bf16"),
        total_steps,
        device,
        fused_adam=not variant.startswith("plain"),
    )
    if variant == "compiled":
        parts.joint = torch.compile(parts.joint)
    return parts


def compare_steps(
    model, batch: dict, variants: tuple, rounds: int, steps: int, device: torch.device
) -> dict:
    """Alternating rounds of `steps` training steps of each variant (VARIANTS) on one batch.

    Every variant starts from the same weights; the loss of each variant's first step (same
    weights, same batch) is compared with the plain one. The allocator setting is switched per
    variant (`extras.runtime.memory`), so "plain" pays the page faults a default process pays.

    Returns:
        {"seconds": {variant: [median step seconds per round]}, "first_loss": {variant: float},
        "warmup_s": {variant: seconds of the untimed first step (compilation included)}}
    """
    config = _bench_config()
    total = 1 + rounds * steps
    parts = {v: _variant_parts(v, model, config, total, device) for v in variants}
    # The untimed first step: kernel choice, allocator growth, and compilation for "compiled".
    first_loss, warmup_s = {}, {}
    for variant in variants:
        _memory_for(variant)
        tick = time.perf_counter()
        first_loss[variant] = float(train_step(parts[variant], batch))
        sync(device)
        warmup_s[variant] = time.perf_counter() - tick
    seconds = {v: [] for v in variants}
    for _ in tqdm(range(rounds), desc="rounds", unit="round", leave=False):
        for variant in variants:
            _memory_for(variant)
            timings = time_calls(lambda p=parts[variant]: train_step(p, batch), steps, 0, device)
            seconds[variant].append(statistics.median(timings))
    keep_freed_memory()
    return {"seconds": seconds, "first_loss": first_loss, "warmup_s": warmup_s}


def _memory_for(variant: str) -> None:
    if variant == "plain":
        release_freed_memory()
    else:
        keep_freed_memory()


def step_figures(compared: dict, batch_size: int) -> dict:
    """Clips/s per variant and each one's ratio to the plain step, as medians of per-round
    ratios (the rounds alternate, so a slow moment of the machine hits all variants of it)."""
    seconds, first = compared["seconds"], compared["first_loss"]
    figures = {}
    for variant, times in seconds.items():
        prefix = "" if variant == "fast" else f"{variant}_"
        figures[f"{prefix}train_step_s"] = statistics.median(times)
        figures[f"{prefix}train_clips_per_s"] = batch_size / statistics.median(times)
        if variant != "plain" and "plain" in seconds:
            ratios = [p / t for p, t in zip(seconds["plain"], times)]
            figures[f"{prefix}speedup_vs_plain"] = statistics.median(ratios)
            figures[f"{prefix}speedup_min"] = min(ratios)
            figures[f"{prefix}speedup_max"] = max(ratios)
            figures[f"{prefix}speedup_rounds"] = ratios
        if variant in ("fast", "plain_kept") and "plain" in first:
            figures[f"{prefix}loss_abs_diff_vs_plain"] = abs(first[variant] - first["plain"])
    if "bf16" in first and "plain" in first:
        figures["bf16_loss_abs_diff_vs_plain"] = abs(first["bf16"] - first["plain"])
    if "compiled" in compared["warmup_s"]:
        figures["compile_s"] = compared["warmup_s"]["compiled"]
    return figures


def bench_model(
    batch_size: int = 4,
    num_frames: int = 16,
    size: int = 224,
    num_candidates: int = 4,
    max_words: int = 20,
    steps: int = 1,
    rounds: int = 5,
    space_to_depth: bool = False,
    device: str = "auto",
    precise_bn_batches: int = 5,
    bf16: str = "auto",
    compile: bool = False,
) -> dict:
    """The training step itself (`train.train_step`: S3D + text forward, MIL-NCE, backward,
    Adam, schedule) on a random batch as the loader gives it (uint8 clips
    [batch_size, 3, num_frames, size, size], [batch_size, num_candidates, max_words] words),
    against the plain step in the same process (`compare_steps`).

    Args:
        bf16: "auto" times the bfloat16 variant where the device has native bfloat16, "on"
            requires it, "off" skips it.
        compile: also time torch.compile of the step (minutes of compilation on a CPU).

    Then seconds per 200 batches of BatchNorm re-estimation (`train.reestimate_bn`, what
    `--precise_bn_batches=200` adds before each checkpoint, decoding not included), timed over
    `precise_bn_batches` batches of that shape and scaled to 200 (0 skips it)."""
    torch_device = pick_device(device)
    torch.manual_seed(0)
    model = build_model(ModelConfig(space_to_depth=space_to_depth, num_embeddings=10_000))
    model.train()
    generator = torch.Generator().manual_seed(0)
    shape = (batch_size, 3, num_frames, size, size)
    batch = {
        "video": torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator),
        "text": torch.randint(0, 10_000, (batch_size, num_candidates, max_words)),
    }
    if torch_device.type == "cuda":  # the training loader pins its batches too
        batch = {name: tensor.pin_memory() for name, tensor in batch.items()}
    variants = _variants(bf16, compile, torch_device)
    compared = compare_steps(model, batch, variants, rounds, steps, torch_device)
    figures = {
        **step_figures(compared, batch_size),
        **describe_device(torch_device),
        "variants": list(variants),
        "rounds": rounds,
        "steps_per_round": steps,
        "kept_freed_memory": keeping_freed_memory(),
        "precise_bn_batches": precise_bn_batches,
        "precise_bn_s_per_200_batches": None,
    }
    if precise_bn_batches > 0:
        model.to(torch_device)
        batches = [batch] * precise_bn_batches
        (bn_seconds,) = time_calls(
            lambda: reestimate_bn(model, batches, precise_bn_batches, torch_device, False),
            steps=1,
            warmup=0,
            device=torch_device,
        )
        figures["precise_bn_s_per_200_batches"] = bn_seconds / precise_bn_batches * 200
    return figures


def _bench_config() -> TrainConfig:
    return TrainConfig(train_dir="", videos="", captions="", lr=1e-4, warmup_steps=0)


def _variants(bf16: str, compile: bool, device: torch.device) -> tuple:
    if bf16 not in ("auto", "on", "off"):
        raise UsageError(f"--bf16 must be auto, on or off, got {bf16!r}")
    if bf16 == "on" and not bf16_supported(device):
        raise UsageError(f"--bf16=on: this {device.type} has no native bfloat16; use auto or off")
    with_bf16 = bf16 == "on" or (bf16 == "auto" and bf16_supported(device))
    chosen = {"plain", "plain_kept", "fast"} | ({"bf16"} if with_bf16 else set())
    if compile:
        chosen.add("compiled")
    return tuple(v for v in VARIANTS if v in chosen)


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
    steps: int = 1,
    rounds: int = 5,
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
    bf16: str = "auto",
    compile: bool = False,
) -> dict:
    """Runs the measurements, prints a table and, last, one JSON line of the figures."""
    if threads:
        torch.set_num_threads(threads)
    figures = bench_model(
        batch_size=batch_size,
        num_frames=num_frames,
        size=size,
        steps=steps,
        rounds=rounds,
        space_to_depth=space_to_depth,
        device=device,
        precise_bn_batches=precise_bn_batches,
        bf16=bf16,
        compile=compile,
    )
    if loader_batches > 0:
        figures.update(
            bench_loader(
                batch_size=batch_size,
                num_frames=num_frames,
                size=size,
                num_videos=num_videos,
                num_workers=num_workers,
                batches=loader_batches,
                video_height=video_height,
                video_width=video_width,
                video_seconds=video_seconds,
            )
        )
    figures.update(
        batch_size=batch_size,
        num_frames=num_frames,
        video_size=size,
        space_to_depth=space_to_depth,
        num_workers=num_workers,
        torch_threads=torch.get_num_threads(),
        torch=torch.__version__,
    )
    print_report(figures)
    return figures


_LABELS = {
    "plain": "plain (NCDHW, default malloc)",
    "plain_kept": "plain + freed memory kept",
    "fast": "y8m (+ channels-last): train runs this",
    "bf16": "y8m + --bf16",
    "compiled": "y8m + torch.compile",
}


def print_report(figures: dict) -> None:
    """The step table (clips/s and median ratio to plain per variant), the rest, the JSON."""
    b, t, s = figures["batch_size"], figures["num_frames"], figures["video_size"]
    print(
        f"device: {figures['device']} ({figures['device_name']}, {figures['device_memory_gb']} GB)"
    )
    print(f"S3D training step, batch {b}x3x{t}x{s}x{s}, {figures['rounds']} alternating rounds")
    print(f"{'variant':<40}{'s/step':>8}{'clips/s':>9}{'vs plain (min-max)':>22}")
    for variant in figures["variants"]:
        prefix = "" if variant == "fast" else f"{variant}_"
        ratio = "1"
        if variant != "plain":
            ratio = (
                f"{figures[prefix + 'speedup_vs_plain']:.2f} ({figures[prefix + 'speedup_min']:.2f}"
                f"-{figures[prefix + 'speedup_max']:.2f})"
            )
        print(
            f"{_LABELS[variant]:<40}{figures[prefix + 'train_step_s']:>8.2f}"
            f"{figures[prefix + 'train_clips_per_s']:>9.2f}{ratio:>22}"
        )
    print(f"first-step loss, y8m - plain: {figures.get('loss_abs_diff_vs_plain', 0.0):.2e}")
    if "compile_s" in figures:
        print(f"torch.compile: {figures['compile_s']:.0f} s to compile (first step)")
    if figures["precise_bn_s_per_200_batches"] is not None:
        print(f"precise BN: {figures['precise_bn_s_per_200_batches']:.1f} s per 200 batches")
    if "loader_clips_per_s" in figures:
        print(
            f"loader, {figures['num_workers']} workers: {figures['loader_clips_per_s']:.2f} "
            "decoded clips/s"
        )
    print(json.dumps(figures))
