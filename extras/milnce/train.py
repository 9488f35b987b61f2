"""MIL-NCE training loop: Adam, warm-up + cosine per step, DDP under torchrun, resumable.

Single process: `y8m extras milnce train --train_dir=... ...`. Several processes (gloo on CPU,
nccl on GPU): `torchrun --nproc_per_node=N -m extras.milnce.train --train_dir=... ...`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler
from tqdm.auto import tqdm

from extras.milnce import distributed
from extras.milnce.captions import CaptionStore
from extras.milnce.checkpoint import (
    ModelConfig,
    build_model,
    checkpoint_path,
    latest_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from extras.milnce.data import NarratedClips, collate_narrated, list_videos, video_id
from extras.milnce.loss import VARIANTS, MILNCELoss
from extras.milnce.text import Tokenizer, load_dictionary, load_word_vectors
from y8m.errors import UsageError
from y8m.fileio import atomic_open


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run besides the model (see `Commands.train`)."""

    train_dir: str
    videos: str
    captions: str
    dictionary: str = ""
    video_root: str = ""
    epochs: int = 150
    batch_size: int = 256
    lr: float = 1e-3
    warmup_steps: int = 5000
    loss: str = "released"
    num_candidates: int = 4
    num_frames: int = 16
    fps: float = 5.0
    video_size: int = 224
    min_time: float = 5.0
    max_words: int = 20
    lowercase: bool = False
    crop: str = "random"
    flip: bool = True
    short_side: int = 0
    word_vectors: str = ""
    freeze_word_embedding: bool = True
    num_workers: int = 4
    seed: int = 1
    checkpoint_every: int = 1
    keep_checkpoints: int = 10
    device: str = "auto"
    progress: bool = True


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Multiplier of the base learning rate at `step`: linear 0 -> 1 over `warmup_steps`, then
    half a cosine down to 0 at `total_steps` (clipped at 0 beyond)."""
    if step < warmup_steps:
        return step / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


class _VideoText(nn.Module):
    """Both branches behind one forward, so DistributedDataParallel syncs every gradient."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, video: torch.Tensor, text: torch.Tensor):
        return self.model(video)["video_embedding"], self.model.text_module(text)["text_embedding"]


def _validate(config: TrainConfig, world_size: int) -> None:
    if config.loss not in VARIANTS:
        raise UsageError(f"--loss must be one of {VARIANTS}, got {config.loss!r}")
    if config.crop not in ("random", "center"):
        raise UsageError(f"--crop must be 'random' or 'center', got {config.crop!r}")
    if config.batch_size < 1 or config.batch_size % world_size:
        raise UsageError(
            f"--batch_size={config.batch_size} must be a positive multiple of the "
            f"{world_size} processes (it is the global batch)"
        )
    for name in ("epochs", "num_candidates", "num_frames", "video_size", "max_words"):
        if getattr(config, name) < 1:
            raise UsageError(f"--{name} must be >= 1, got {getattr(config, name)}")
    if config.fps <= 0:
        raise UsageError(f"--fps must be > 0, got {config.fps}")


def _start_state(
    config: TrainConfig, model_config: ModelConfig
) -> tuple[dict | None, Tokenizer, ModelConfig]:
    """The checkpoint to resume from (or None), the tokenizer and the model config."""
    last = latest_checkpoint(config.train_dir) if os.path.isdir(config.train_dir) else None
    if last is not None:
        state = read_checkpoint(last)
        state["path"] = last
        tokenizer_config = dict(state["tokenizer"])
        words = tokenizer_config.pop("words")
        return state, Tokenizer(words, **tokenizer_config), ModelConfig(**state["model_config"])
    if not config.dictionary:
        raise UsageError(
            "--dictionary is required for a new run: build one with `y8m extras milnce dictionary`"
        )
    words = load_dictionary(config.dictionary)
    tokenizer = Tokenizer(words, max_words=config.max_words, lowercase=config.lowercase)
    model_config = dataclasses.replace(model_config, num_embeddings=tokenizer.vocab_size)
    return None, tokenizer, model_config


def train(config: TrainConfig, model_config: ModelConfig | None = None) -> dict:
    """Trains (or resumes) a MIL-NCE model; see `Commands.train` for the flags.

    Under torchrun every process calls this; the global batch is split over processes, both
    embeddings are all-gathered before the loss, and rank 0 writes checkpoints. Re-running with
    the same `train_dir` resumes from its newest checkpoint (model, optimizer, schedule, epoch).

    Returns:
        Summary dict: epochs, steps, first/last epoch loss, skipped videos, checkpoint path.
    """
    context = distributed.setup(config.device)
    try:
        return _train(config, model_config or ModelConfig(), context)
    finally:
        distributed.teardown(context)


def _train(
    config: TrainConfig, model_config: ModelConfig, context: distributed.DistContext
) -> dict:
    _validate(config, context.world_size)
    state, tokenizer, model_config = _start_state(config, model_config)
    torch.manual_seed(config.seed)

    paths = list_videos(config.videos, config.video_root)
    store = CaptionStore(config.captions)
    usable = [p for p in paths if video_id(p) in store]
    if len(usable) < config.batch_size:
        raise UsageError(
            f"{len(usable)} of {len(paths)} videos have captions in {config.captions!r}, fewer "
            f"than --batch_size={config.batch_size}"
        )
    dataset = NarratedClips(
        usable,
        store,
        tokenizer,
        num_candidates=config.num_candidates,
        num_frames=config.num_frames,
        fps=config.fps,
        size=config.video_size,
        min_time=config.min_time,
        crop=config.crop,
        flip=config.flip,
        short_side=config.short_side or None,
        seed=config.seed,
    )
    per_rank = config.batch_size // context.world_size
    steps_per_epoch = len(usable) // config.batch_size
    total_steps = steps_per_epoch * config.epochs

    model = build_model(model_config)
    if state is not None:
        model.load_state_dict(state["state_dict"])  # before DDP broadcasts rank 0's weights
    elif config.word_vectors:
        table, found = load_word_vectors(
            config.word_vectors, tokenizer.words, model_config.word_embedding_dim
        )
        with torch.no_grad():
            model.text_module.word_embd.weight.copy_(table)
        if context.is_main:
            print(f"word vectors: {found} of {len(tokenizer.words)} dictionary words found")
    # Whether words are frozen is part of the run: a resumed run keeps its first setting, so
    # the optimizer state still matches the trainable parameters.
    origin = state["train_config"] if state is not None else dataclasses.asdict(config)
    if origin["word_vectors"] and origin["freeze_word_embedding"]:
        model.text_module.word_embd.weight.requires_grad_(False)
    model.to(context.device)
    if context.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed clip shapes: pick the fastest kernels
    joint: nn.Module = _VideoText(model)
    if context.is_distributed:
        device_ids = [context.device.index] if context.device.type == "cuda" else None
        joint = nn.parallel.DistributedDataParallel(joint, device_ids=device_ids)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, config.warmup_steps, total_steps)
    )
    loss_fn = MILNCELoss(config.loss)

    start_epoch, step, history = 0, 0, []
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, step, history = state["epoch"], state["step"], list(state["history"])
        if context.is_main:
            print(f"resuming from {state['path']} (epoch {start_epoch}, step {step})")
    if context.is_main:
        os.makedirs(config.train_dir, exist_ok=True)
        with atomic_open(os.path.join(config.train_dir, "config.json")) as f:
            json.dump(
                {"train": dataclasses.asdict(config), "model": dataclasses.asdict(model_config)},
                f,
                indent=2,
            )

    if context.is_distributed:
        sampler = DistributedSampler(
            dataset,
            context.world_size,
            context.rank,
            shuffle=True,
            seed=config.seed,
            drop_last=True,
        )
    else:
        sampler = RandomSampler(dataset, generator=torch.Generator())
    loader = DataLoader(
        dataset,
        batch_size=per_rank,
        sampler=sampler,
        num_workers=config.num_workers,
        collate_fn=collate_narrated,
        drop_last=True,
        pin_memory=context.device.type == "cuda",
        worker_init_fn=_worker_init,
    )

    skipped_total, skipped_examples = 0, []
    saved = state["path"] if state is not None else None
    for epoch in range(start_epoch, config.epochs):
        dataset.set_epoch(epoch)
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)
        else:
            sampler.generator.manual_seed(config.seed * 100_003 + epoch)
        model.train()
        losses, skipped, clips, started = [], 0, 0, time.perf_counter()
        bar = tqdm(
            total=steps_per_epoch,
            desc=f"epoch {epoch + 1}/{config.epochs}",
            disable=not (config.progress and context.is_main),
            unit="step",
        )
        for batch in loader:
            video = batch["video"].to(context.device, non_blocking=True).float().div_(255.0)
            text = batch["text"].to(context.device, non_blocking=True)
            text = text.view(-1, text.shape[-1])  # (B*K, L): candidates of a clip contiguous
            video_embedding, text_embedding = joint(video, text)
            loss = loss_fn(
                distributed.all_gather_with_grad(video_embedding),
                distributed.all_gather_with_grad(text_embedding),
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            losses.append(loss.item())
            skipped += batch["skipped"]
            skipped_examples.extend(batch["skipped_paths"][: 5 - len(skipped_examples)])
            clips += config.batch_size
            rate = clips / (time.perf_counter() - started)
            bar.set_postfix(loss=f"{losses[-1]:.4f}", clips_s=f"{rate:.1f}")
            bar.update()
        bar.close()
        skipped = int(distributed.all_reduce_sum(skipped, context))
        skipped_total += skipped
        seconds = time.perf_counter() - started
        history.append(
            {
                "epoch": epoch + 1,
                "step": step,
                "loss": sum(losses) / max(1, len(losses)),
                "lr": scheduler.get_last_lr()[0],
                "clips_per_s": clips / seconds if seconds > 0 else 0.0,
                "skipped": skipped,
            }
        )
        last_epoch = epoch + 1 == config.epochs
        if context.is_main and (last_epoch or (epoch + 1) % config.checkpoint_every == 0):
            saved = checkpoint_path(config.train_dir, epoch + 1)
            save_checkpoint(
                {
                    "epoch": epoch + 1,
                    "step": step,
                    "model_config": dataclasses.asdict(model_config),
                    "tokenizer": {
                        "words": tokenizer.words,
                        "max_words": tokenizer.max_words,
                        "lowercase": tokenizer.lowercase,
                    },
                    "train_config": dataclasses.asdict(config),
                    "history": history,
                    "state_dict": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                },
                saved,
                keep=config.keep_checkpoints,
            )
        if context.is_main:
            with atomic_open(os.path.join(config.train_dir, "history.json")) as f:
                json.dump(history, f, indent=2)
        distributed.barrier(context)

    if context.is_main and skipped_total:
        print(
            f"skipped {skipped_total} unreadable videos or caption files, e.g. {skipped_examples}"
        )
    return {
        "train_dir": config.train_dir,
        "epochs": len(history),
        "steps": step,
        "first_loss": history[0]["loss"] if history else None,
        "last_loss": history[-1]["loss"] if history else None,
        "skipped": skipped_total,
        "checkpoint": saved,
        "resumed_from": state["path"] if state is not None else None,
        "world_size": context.world_size,
    }


def _worker_init(_: int) -> None:
    # Decoding workers share the CPU with the training process: one thread each.
    torch.set_num_threads(1)


def main() -> None:
    """Entry point for `torchrun ... -m extras.milnce.train --flag=value ...`."""
    import sys

    import fire

    from extras.milnce.commands import Commands

    try:
        # The summary is printed by the command itself; fire would echo the dict on every rank.
        fire.Fire(Commands().train, serialize=lambda _: None)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
