"""MIL-NCE training loop: Adam, warm-up + cosine per step, DDP under torchrun, resumable.

Single process: `y8m extras milnce train --train_dir=... ...`. Several processes (gloo on CPU,
nccl on GPU): `torchrun --nproc_per_node=N -m extras.milnce.launch --train_dir=... ...`.

A run is a sequence of named parts: check the config, find the resume state, build the data,
build the model and optimizer (`build_parts`), restore, then per epoch the steps (`train_step`,
which `y8m bench milnce` also times) and the end of the epoch (record, checkpoint), and last
the summary. Features such as an EMA of the weights attach as `Hooks`
(`extras.runtime.hooks`) rather than as branches of this loop.

Before each checkpoint the BatchNorm statistics are re-estimated (`--precise_bn_batches`,
`reestimate_bn`): the checkpoint's `state_dict` holds exact averages over that many training
batches, which eval, embed and probe use, and `bn_training_stats` holds the running averages
the training had, which a resumed run loads back, so that it continues exactly as an
uninterrupted one (whose model never sees the re-estimated values).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler
from tqdm.auto import tqdm

from extras.milnce.captions import CaptionStore
from extras.milnce.checkpoint import CHECKPOINTS, build_model, save_checkpoint
from extras.milnce.config import ModelConfig, TrainConfig
from extras.milnce.data import NarratedClips, collate_narrated, list_videos, video_id
from extras.milnce.loss import VARIANTS, MILNCELoss
from extras.milnce.text import Tokenizer, load_dictionary, load_word_vectors
from extras.runtime import distributed
from extras.runtime.checkpoints import restore_training, training_state
from extras.runtime.device import bf16_supported
from extras.runtime.distributed import Distributed, all_gather_with_grad
from extras.runtime.flags import flag_fields
from extras.runtime.hooks import Hooks
from extras.runtime.inputs import batches, check_loss
from extras.runtime.memory import keep_freed_memory
from extras.runtime.optim import adam
from extras.runtime.precise_bn import load_running_stats, recompute_bn_stats, running_stats
from extras.runtime.timing import Throughput
from y8m.errors import UsageError
from y8m.fileio import atomic_open


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


@dataclasses.dataclass
class Parts:
    """What a training step uses. `model` is the bare S3D (what checkpoints hold); `joint` is
    what the step calls: both branches behind one forward, DDP-wrapped under torchrun."""

    model: nn.Module
    joint: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loss_fn: MILNCELoss
    device: torch.device
    bf16: bool = False  # autocast the forward to bfloat16


def build_parts(
    model: nn.Module,
    config: TrainConfig,
    total_steps: int,
    device: torch.device,
    fused_adam: bool = True,
) -> Parts:
    """Moves `model` to `device` and builds what trains it: Adam over its trainable parameters
    (`extras.runtime.optim.adam`; `fused_adam` False is torch's default Adam), the warm-up +
    cosine schedule over `total_steps`, and `config.loss`. Not yet DDP-wrapped: restore first
    (see `restore_training`).

    Freed memory is kept in the process (`extras.runtime.memory`): the step allocates its
    activations anew every step, and fresh pages cost the CPU step a third of its time."""
    if config.bf16 and not bf16_supported(device):
        raise UsageError(
            f"--bf16: this {device.type.upper()} has no native bfloat16 (AVX-512 BF16 or AMX on "
            "a CPU); drop --bf16"
        )
    keep_freed_memory()
    model.to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed clip shapes: pick the fastest kernels
    optimizer = adam(model.parameters(), config.lr, fused=fused_adam)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, config.warmup_steps, total_steps)
    )
    loss_fn = MILNCELoss(config.loss)
    return Parts(model, _VideoText(model), optimizer, scheduler, loss_fn, device, config.bf16)


def train_step(parts: Parts, batch: dict) -> torch.Tensor:
    """One optimisation step on a loader batch (video uint8 [B, 3, T, H, W], text [B, K, L]).

    Under torchrun both embeddings are gathered from every process before the loss, so each
    computes it on the global batch. Returns the loss, detached.
    """
    video = batch["video"].to(parts.device, non_blocking=True).float().div_(255.0)
    text = batch["text"].to(parts.device, non_blocking=True)
    text = text.view(-1, text.shape[-1])  # (B*K, L): candidates of a clip contiguous
    with torch.autocast(parts.device.type, dtype=torch.bfloat16, enabled=parts.bf16):
        video_embedding, text_embedding = parts.joint(video, text)
    loss = parts.loss_fn(
        all_gather_with_grad(video_embedding.float()), all_gather_with_grad(text_embedding.float())
    )
    parts.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    parts.optimizer.step()
    parts.scheduler.step()
    return loss.detach()


@dataclasses.dataclass
class _Data:
    dataset: NarratedClips
    sampler: DistributedSampler | RandomSampler
    loader: DataLoader
    steps_per_epoch: int


@dataclasses.dataclass
class Run:
    """A run in progress, as the loop's parts and the hooks see it."""

    config: TrainConfig
    model_config: ModelConfig
    tokenizer: Tokenizer
    place: Distributed
    data: _Data
    parts: Parts
    hooks: Hooks
    epoch: int = 0  # epochs done
    step: int = 0  # optimizer steps done
    history: list = dataclasses.field(default_factory=list)
    skipped: int = 0  # unreadable videos or caption files, all processes
    skipped_examples: list = dataclasses.field(default_factory=list)
    checkpoint: str | None = None  # the newest checkpoint written (or resumed from)
    resumed_from: str | None = None


def train(
    config: TrainConfig, model_config: ModelConfig | None = None, hooks: Hooks | None = None
) -> dict:
    """Trains (or resumes) a MIL-NCE model; see `Commands.train` for the flags.

    Under torchrun every process calls this; the global batch is split over processes, both
    embeddings are all-gathered before the loss, and rank 0 writes checkpoints. Re-running with
    the same `train_dir` resumes from its newest checkpoint (model, optimizer, schedule, epoch).

    Returns:
        Summary dict: epochs, steps, first/last epoch loss, skipped videos, checkpoint path.
    """
    place = distributed.setup(config.device)
    try:
        return _train(config, model_config or ModelConfig(), place, hooks or Hooks())
    finally:
        distributed.teardown(place)


def _train(config: TrainConfig, model_config: ModelConfig, place: Distributed, hooks) -> dict:
    _validate(config, place.world_size)
    resume, tokenizer, model_config = _start_state(config, model_config, place.is_main)
    torch.manual_seed(config.seed)
    data = build_data(config, tokenizer, place)
    model = _build_model(config, model_config, tokenizer, resume, place)
    parts = build_parts(model, config, data.steps_per_epoch * config.epochs, place.device)
    run = Run(config, model_config, tokenizer, place, data, parts, hooks)
    _restore(run, resume)
    parts.joint = _distribute(parts.joint, place)
    _write_config(run)
    for epoch in range(run.epoch, config.epochs):
        _end_epoch(run, *_train_epoch(run, epoch))
    return _finish(run)


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
    if config.precise_bn_batches < 0:
        raise UsageError(f"--precise_bn_batches must be >= 0, got {config.precise_bn_batches}")


def kept_settings(config: TrainConfig, model_config: ModelConfig, state: dict) -> dict:
    """The flags a resumed run takes from its checkpoint whose value differs from this
    run's: {flag: (value kept, value given)}. The architecture, the tokenizer and the word
    table are fixed when a run starts; --dictionary and --word_vectors count only if given."""
    saved_model = state["model_config"]
    saved_train = state.get("train_config", {})
    saved = {f.name: saved_model.get(f.name) for f in flag_fields(ModelConfig)}
    given = {f.name: getattr(model_config, f.name) for f in flag_fields(ModelConfig)}
    saved.update(max_words=state["tokenizer"]["max_words"])
    saved.update(lowercase=state["tokenizer"]["lowercase"])
    given.update(max_words=config.max_words, lowercase=config.lowercase)
    names = [n for n in ("dictionary", "word_vectors") if getattr(config, n)]
    if saved_train.get("word_vectors"):
        names.append("freeze_word_embedding")
    for name in names:
        if name in saved_train:
            saved[name], given[name] = saved_train[name], getattr(config, name)
    return {k: (saved[k], given[k]) for k in given if saved[k] != given[k]}


def _start_state(
    config: TrainConfig, model_config: ModelConfig, is_main: bool = True
) -> tuple[tuple[str, dict] | None, Tokenizer, ModelConfig]:
    """The checkpoint to resume from ((path, contents) or None), the tokenizer and the model
    config: a resumed run keeps the ones it was started with, and says so (one line) when
    this run's flags ask for others."""
    resume = CHECKPOINTS.resume(config.train_dir)
    if resume is not None:
        state = resume[1]
        kept = kept_settings(config, model_config, state)
        if kept and is_main:
            print(
                f"resuming {config.train_dir} keeps the checkpoint's "
                + ", ".join(f"--{k}={a} (given {b})" for k, (a, b) in kept.items())
                + ": these are fixed when a run starts; use a new --train_dir to change them"
            )
        tokenizer_config = dict(state["tokenizer"])
        words = tokenizer_config.pop("words")
        return resume, Tokenizer(words, **tokenizer_config), ModelConfig(**state["model_config"])
    if not config.dictionary:
        raise UsageError(
            "--dictionary is required for a new run: build one with `y8m extras milnce dictionary`"
        )
    words = load_dictionary(config.dictionary)
    tokenizer = Tokenizer(words, max_words=config.max_words, lowercase=config.lowercase)
    model_config = dataclasses.replace(model_config, num_embeddings=tokenizer.vocab_size)
    return None, tokenizer, model_config


def build_data(config: TrainConfig, tokenizer: Tokenizer, place: Distributed) -> _Data:
    """The captioned videos, their clips and the loader of this process's share of them."""
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
    if place.enabled:
        sampler = DistributedSampler(
            dataset, place.world_size, place.rank, shuffle=True, seed=config.seed, drop_last=True
        )
    else:
        sampler = RandomSampler(dataset, generator=torch.Generator())
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size // place.world_size,
        sampler=sampler,
        num_workers=config.num_workers,
        collate_fn=collate_narrated,
        drop_last=True,
        pin_memory=place.device.type == "cuda",
        worker_init_fn=_worker_init,
    )
    return _Data(dataset, sampler, loader, len(usable) // config.batch_size)


def _worker_init(_: int) -> None:
    # Decoding workers share the CPU with the training process: one thread each.
    torch.set_num_threads(1)


def _build_model(
    config: TrainConfig,
    model_config: ModelConfig,
    tokenizer: Tokenizer,
    resume: tuple[str, dict] | None,
    place: Distributed,
) -> nn.Module:
    """A fresh S3D (word vectors loaded for a new run), its word table frozen if asked."""
    model = build_model(model_config)
    if resume is None and config.word_vectors:
        table, found = load_word_vectors(
            config.word_vectors, tokenizer.words, model_config.word_embedding_dim
        )
        with torch.no_grad():
            model.text_module.word_embd.weight.copy_(table)
        if place.is_main:
            print(f"word vectors: {found} of {len(tokenizer.words)} dictionary words found")
    # Whether words are frozen is part of the run: a resumed run keeps its first setting, so
    # the optimizer state still matches the trainable parameters.
    origin = resume[1]["train_config"] if resume is not None else dataclasses.asdict(config)
    if origin["word_vectors"] and origin["freeze_word_embedding"]:
        model.text_module.word_embd.weight.requires_grad_(False)
    return model


def _restore(run: Run, resume: tuple[str, dict] | None) -> None:
    """Weights, optimizer, schedule and progress of the checkpoint resumed from, if any."""
    if resume is None:
        return
    path, state = resume
    restore_training(state, run.parts.model, run.parts.optimizer, run.parts.scheduler)
    if state.get("bn_training_stats"):  # the running averages, not the re-estimated ones
        load_running_stats(run.parts.model, state["bn_training_stats"])
    run.epoch, run.step, run.history = state["epoch"], state["step"], list(state["history"])
    run.checkpoint = run.resumed_from = path
    run.hooks("at_restore", run, payload=state)
    if run.place.is_main:
        print(f"resuming from {path} (epoch {run.epoch}, step {run.step})")


def _distribute(joint: nn.Module, place: Distributed) -> nn.Module:
    # After the restore: DDP broadcasts rank 0's weights when it wraps the model.
    if not place.enabled:
        return joint
    device_ids = [place.device.index] if place.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(joint, device_ids=device_ids)


def _write_config(run: Run) -> None:
    if run.place.is_main:
        os.makedirs(run.config.train_dir, exist_ok=True)
        with atomic_open(os.path.join(run.config.train_dir, "config.json")) as f:
            config = {
                "train": dataclasses.asdict(run.config),
                "model": dataclasses.asdict(run.model_config),
            }
            json.dump(config, f, indent=2)


def _train_epoch(run: Run, epoch: int) -> tuple[list[float], int, Throughput]:
    """One pass over this process's share of the videos: (step losses, skipped, clips/s)."""
    config, data = run.config, run.data
    data.dataset.set_epoch(epoch)
    if isinstance(data.sampler, DistributedSampler):
        data.sampler.set_epoch(epoch)
    else:
        data.sampler.generator.manual_seed(config.seed * 100_003 + epoch)
    run.parts.model.train()
    losses, skipped, speed = [], 0, Throughput()
    bar = tqdm(
        total=data.steps_per_epoch,
        desc=f"epoch {epoch + 1}/{config.epochs}",
        disable=not (config.progress and run.place.is_main),
        unit="step",
    )
    for batch in batches(data.loader):
        loss = train_step(run.parts, batch)
        run.step += 1
        losses.append(loss.item())
        # The loss is the global batch's (gathered), so every process stops at the same step.
        check_loss(losses[-1], run.step, CHECKPOINTS.latest(config.train_dir))
        skipped += batch["skipped"]
        run.skipped_examples.extend(batch["skipped_paths"][: 5 - len(run.skipped_examples)])
        speed.add(config.batch_size)
        bar.set_postfix(loss=f"{losses[-1]:.4f}", clips_s=f"{speed.per_s() or 0.0:.1f}")
        bar.update()
        run.hooks("after_step", run, loss=loss)
    bar.close()
    return losses, skipped, speed


def _end_epoch(run: Run, losses: list[float], skipped: int, speed: Throughput) -> None:
    """The epoch's history entry, then (rank 0) the checkpoint and history.json."""
    config = run.config
    skipped = int(distributed.all_reduce_sum(skipped, run.place))
    run.skipped += skipped
    run.epoch += 1
    record = {
        "epoch": run.epoch,
        "step": run.step,
        "loss": sum(losses) / max(1, len(losses)),
        "lr": run.parts.scheduler.get_last_lr()[0],
        "clips_per_s": speed.per_s() or 0.0,
        "skipped": skipped,
    }
    run.history.append(record)
    run.hooks("after_epoch", run, record=record)
    last_epoch = run.epoch == config.epochs
    if run.place.is_main and (last_epoch or run.epoch % config.checkpoint_every == 0):
        _save(run)
    if run.place.is_main:
        with atomic_open(os.path.join(config.train_dir, "history.json")) as f:
            json.dump(run.history, f, indent=2)
    distributed.barrier(run.place)


def reestimate_bn(
    model: nn.Module,
    batches,
    num_batches: int,
    device: torch.device,
    progress: bool = True,
    desc: str = "precise BN",
) -> int:
    """Sets the BatchNorm statistics of S3D's video network to exact averages over
    `num_batches` loader batches (`extras.runtime.precise_bn.recompute_bn_stats`). The text
    branch has no BatchNorm, so only the videos go through. Returns the batches used."""

    def forward(batch: dict) -> None:
        model(batch["video"].to(device, non_blocking=True).float().div_(255.0))

    return recompute_bn_stats(model, batches, forward, num_batches, progress, desc)


def _precise_bn(run: Run) -> tuple[dict | None, dict, dict]:
    """(record, re-estimated buffers, training buffers) for the checkpoint; the model keeps
    its training buffers. The global RNG is left as it was, so training does not change."""
    config, model = run.config, run.parts.model
    if config.precise_bn_batches == 0:
        return None, {}, {}
    training = running_stats(model)
    with torch.random.fork_rng(devices=[]):
        used = reestimate_bn(
            model,
            run.data.loader,
            config.precise_bn_batches,
            run.parts.device,
            progress=config.progress,
            desc=f"precise BN, epoch {run.epoch}",
        )
    precise = running_stats(model)
    load_running_stats(model, training)
    record = {"batches": used, "clips_per_batch": config.batch_size // run.place.world_size}
    return record, precise, training


def _save(run: Run) -> None:
    path = CHECKPOINTS.path(run.config.train_dir, run.epoch)
    record, precise, training = _precise_bn(run)
    payload = {
        "epoch": run.epoch,
        "step": run.step,
        "model_config": dataclasses.asdict(run.model_config),
        "tokenizer": {
            "words": run.tokenizer.words,
            "max_words": run.tokenizer.max_words,
            "lowercase": run.tokenizer.lowercase,
        },
        "train_config": dataclasses.asdict(run.config),
        "history": run.history,
        "world_size": run.place.world_size,
        **training_state(run.parts.model, run.parts.optimizer, run.parts.scheduler),
        "precise_bn": record,  # None: the statistics are training's running averages
        "bn_training_stats": training,
    }
    payload["state_dict"] = {**payload["state_dict"], **precise}
    run.hooks("at_checkpoint", run, payload=payload)
    save_checkpoint(payload, path, keep=run.config.keep_checkpoints)
    run.checkpoint = path


def _finish(run: Run) -> dict:
    if run.place.is_main and run.skipped:
        print(
            f"skipped {run.skipped} unreadable videos or caption files, e.g. {run.skipped_examples}"
        )
    history = run.history
    summary = {
        "train_dir": run.config.train_dir,
        "epochs": len(history),
        "steps": run.step,
        "first_loss": history[0]["loss"] if history else None,
        "last_loss": history[-1]["loss"] if history else None,
        "skipped": run.skipped,
        "checkpoint": run.checkpoint,
        "resumed_from": run.resumed_from,
        "world_size": run.place.world_size,
    }
    run.hooks("at_end", run, summary=summary)
    return summary


if __name__ == "__main__":
    # The torchrun entry lives beside the command now (this module is the library).
    print(
        "error: run `torchrun ... -m extras.milnce.launch --train_dir=...` "
        "(extras.milnce.train is no longer a torchrun entry)",
        file=sys.stderr,
    )
    sys.exit(2)
