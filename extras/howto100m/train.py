"""Training the joint embedding: Adam, per-epoch decay, checkpoints, resume, torchrun.

Launch single-process (`y8m extras howto100m train ...`) or with torchrun
(`torchrun --nproc_per_node=N -m extras.howto100m.launch ...`); under torchrun each process
draws its own v videos per step (DistributedSampler) and DDP averages the gradients, so the
effective batch is world_size x v videos x k pairs. Negatives come from the process's own
batch.

A run is a sequence of named parts: build the data, build the model and optimizer
(`build_parts`), restore, then per epoch the steps (`train_step`, which `y8m bench howto100m`
also times) and the end of the epoch (record, checkpoint), and last the summary. Features such
as an EMA of the weights attach as `Hooks` (`extras.runtime.hooks`) rather than as branches.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from extras.howto100m import checkpoint as ckpt
from extras.howto100m.captions import load_captions, read_video_list
from extras.howto100m.config import TrainConfig
from extras.howto100m.data import PairMaker, PairOptions, TrainPairs, train_loader, usable_videos
from extras.howto100m.features import FeatureStore
from extras.howto100m.loss import MaxMarginRankingLoss
from extras.howto100m.model import Net
from extras.howto100m.text import WordVectors
from extras.runtime import distributed
from extras.runtime.checkpoints import restore_training, training_state
from extras.runtime.distributed import Distributed
from extras.runtime.hooks import Hooks
from extras.runtime.inputs import batches, check_loss
from extras.runtime.optim import adam
from extras.runtime.timing import Throughput
from y8m.errors import UsageError
from y8m.fileio import atomic_open


def pair_options(config: TrainConfig) -> PairOptions:
    return PairOptions(config.min_time, config.min_words, config.max_words)


def data_options(config: TrainConfig) -> dict:
    """How pairs were built; saved in checkpoints so eval/embed/localize build them alike."""
    return {
        **dataclasses.asdict(pair_options(config)),
        "remove_stop_words": config.remove_stop_words,
        "fps_2d": config.fps_2d,
        "fps_3d": config.fps_3d,
        "two_streams": bool(config.features_3d),
    }


@dataclasses.dataclass
class Parts:
    """What a training step uses. `net` is the bare Net (what checkpoints hold); `model` is
    what the step calls: the net, DDP-wrapped under torchrun."""

    net: Net
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loss_fn: MaxMarginRankingLoss
    device: torch.device


def build_parts(net: Net, config: TrainConfig, device: torch.device) -> Parts:
    """Moves `net` to `device` and builds what trains it: Adam over its trainable parameters,
    the per-epoch decay and the ranking loss of `config`. Not yet DDP-wrapped: restore first
    (see `restore_training`)."""
    net.to(device)  # before the optimizer, so a resumed Adam state lands on the device
    optimizer = adam(net.parameters(), config.lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_decay)
    loss_fn = MaxMarginRankingLoss(
        config.margin,
        config.negative_weighting,
        config.hard_negative_rate,
        weighting=config.loss_weighting,
    )
    return Parts(net, net, optimizer, scheduler, loss_fn, device)


def train_step(parts: Parts, batch: dict) -> torch.Tensor:
    """One optimisation step on a loader batch (video [v, k, D], text [v, k, W, we] and,
    optionally, caption [v, k]: the caption index of each pair); the negatives are the
    batch's other pairs. With caption indices, a pair drawn twice is embedded once (the same
    loss and gradients). Returns the loss, detached."""
    video = batch["video"].to(parts.device, non_blocking=True)  # (v, k, D)
    text = batch["text"].to(parts.device, non_blocking=True)  # (v, k, W, we)
    pair_ids = pair_keys(batch["caption"]).to(parts.device) if "caption" in batch else None
    similarity = parts.model(video.flatten(0, 1), text.flatten(0, 1), pair_ids)  # (v k, v k)
    loss = parts.loss_fn(similarity, n_pair=video.shape[1])
    parts.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    parts.optimizer.step()
    return loss.detach()


def pair_keys(caption: torch.Tensor) -> torch.Tensor:
    """One int64 key per pair of a [v, k] batch of caption indices, equal only for the same
    caption of the same batch video ([v k], in the pairs' order)."""
    video = torch.arange(caption.shape[0], dtype=torch.int64)[:, None]
    return (video * (1 << 32) + caption.to(torch.int64)).flatten()


@dataclasses.dataclass
class _Data:
    dataset: TrainPairs
    options: dict  # data_options(config)
    video_dim: int
    we_dim: int


@dataclasses.dataclass
class Run:
    """A run in progress, as the loop's parts and the hooks see it."""

    config: TrainConfig
    place: Distributed
    data: _Data
    parts: Parts
    hooks: Hooks
    epoch: int = 0  # epochs done
    skip: int = 0  # batches of the current epoch done before a mid-epoch resume
    global_step: int = 0
    history: list = dataclasses.field(default_factory=list)
    total_loss: float = 0.0  # sum and count of the current epoch's step losses
    num_batches: int = 0
    checkpoint: str | None = None  # the newest checkpoint written (or resumed from)
    speed: Throughput = dataclasses.field(default_factory=Throughput)  # pairs/s, all epochs


def _check_resume(payload: dict, net_config: dict, options: dict, output_dir: str) -> None:
    saved = {**payload.get("config", {}), **payload.get("data", {})}
    wanted = {**net_config, **options}
    diff = {k: (saved.get(k), v) for k, v in wanted.items() if saved.get(k) != v}
    if diff:
        details = ", ".join(f"{k}: saved {a} vs now {b}" for k, (a, b) in diff.items())
        raise UsageError(
            f"{output_dir} holds a checkpoint made with other settings ({details}); "
            "pass the same flags or use a new --output_dir"
        )


def fit(config: TrainConfig, hooks: Hooks | None = None) -> dict:
    """Trains (or resumes training) and returns a summary.

    Re-running with the same `output_dir` resumes from its newest checkpoint, inside an
    epoch when `checkpoint_every` saved one, and stops at once if all epochs are done.

    Returns:
        {"output_dir", "checkpoint", "epochs_done", "loss", "history", "pairs_per_s"}.
    """
    config.check()
    place = distributed.setup(config.device)
    try:
        return _fit(config, place, hooks or Hooks())
    finally:
        distributed.teardown(place)


def _fit(config: TrainConfig, place: Distributed, hooks: Hooks) -> dict:
    torch.manual_seed(config.seed)
    data = _build_data(config)
    net = Net(
        embd_dim=config.embd_dim,
        video_dim=data.video_dim,
        we_dim=data.we_dim,
        sentence_dim=config.sentence_dim,
        mask_padding=config.mask_padding,
    )
    parts = build_parts(net, config, place.device)
    run = Run(config, place, data, parts, hooks)
    _restore(run)
    parts.model = _distribute(net, place)
    _write_config(run)
    parts.model.train()
    while run.epoch < config.epochs:
        _train_epoch(run)
        _end_epoch(run)
    return _finish(run)


def _build_data(config: TrainConfig) -> _Data:
    """The usable training videos and their clip-caption pairs."""
    captions = load_captions(config.captions)
    store = FeatureStore(config.features_2d, config.features_3d, config.fps_2d, config.fps_3d)
    split = read_video_list(config.videos) if config.videos else None
    videos = usable_videos(captions, store, split)
    words = WordVectors.load(config.word2vec, config.word2vec_limit, config.remove_stop_words)
    maker = PairMaker(captions, store, words, pair_options(config))
    dataset = TrainPairs(maker, videos, config.pairs_per_video, config.seed)
    return _Data(dataset, data_options(config), store.video_dim(videos[0]), words.dim)


def _restore(run: Run) -> None:
    """Weights, optimizer, schedule and progress of the newest checkpoint, if there is one."""
    resume = ckpt.CHECKPOINTS.resume(run.config.output_dir)
    if resume is None:
        return
    path, payload = resume
    parts = run.parts
    _check_resume(payload, parts.net.config(), run.data.options, run.config.output_dir)
    restore_training(payload, parts.net, parts.optimizer, parts.scheduler)
    run.epoch, run.skip = payload["epoch"], payload["step"]
    run.global_step, run.history = payload["global_step"], list(payload["history"])
    run.total_loss, run.num_batches = payload.get("epoch_loss", [0.0, 0])
    run.checkpoint = path
    run.hooks("at_restore", run, payload=payload)
    if run.place.is_main:
        print(f"resuming from {path} (epoch {run.epoch + 1}, step {run.skip})")


def _distribute(net: Net, place: Distributed) -> nn.Module:
    # After the restore: DDP broadcasts rank 0's weights when it wraps the model.
    if not place.enabled:
        return net
    ids = [place.device.index] if place.device.type == "cuda" else None
    return DistributedDataParallel(net, device_ids=ids)


def _write_config(run: Run) -> None:
    if run.place.is_main:
        os.makedirs(run.config.output_dir, exist_ok=True)
        with atomic_open(os.path.join(run.config.output_dir, "config.json")) as f:
            json.dump(dataclasses.asdict(run.config), f, indent=2)


def _train_epoch(run: Run) -> None:
    """The rest of the current epoch (all of it unless resumed mid-epoch)."""
    config, place = run.config, run.place
    loader = train_loader(
        run.data.dataset,
        config.videos_per_batch,
        run.epoch,
        config.seed,
        skip_batches=run.skip,
        num_workers=config.num_workers,
        distributed=place.enabled,
        pin_memory=place.device.type == "cuda",
    )
    bar = tqdm(
        loader,
        desc=f"epoch {run.epoch + 1}/{config.epochs}",
        unit="batch",
        disable=not (config.progress and place.is_main),
    )
    run.speed.start()
    for step, batch in enumerate(batches(bar), start=run.skip + 1):
        loss = train_step(run.parts, batch)
        check_loss(float(loss), run.global_step + 1, ckpt.latest_checkpoint(config.output_dir))
        run.global_step += 1
        run.total_loss += float(loss)
        run.num_batches += 1
        run.speed.add(batch["video"].shape[0] * batch["video"].shape[1])
        bar.set_postfix(
            loss=f"{run.total_loss / run.num_batches:.4f}",
            pairs_s=f"{run.speed.per_s() or 0.0:.0f}",
        )
        run.hooks("after_step", run, loss=loss)
        if config.checkpoint_every and run.global_step % config.checkpoint_every == 0:
            _save(run, step)
    bar.close()


def _end_epoch(run: Run) -> None:
    """The epoch's history entry, the decay, the end-of-epoch checkpoint and history.json."""
    mean_loss = distributed.average(run.total_loss / max(run.num_batches, 1), run.place)
    record = {
        "epoch": run.epoch + 1,
        "loss": mean_loss,
        "lr": run.parts.optimizer.param_groups[0]["lr"],
    }
    run.history.append(record)
    run.hooks("after_epoch", run, record=record)
    run.parts.scheduler.step()
    run.epoch, run.skip = run.epoch + 1, 0
    run.total_loss, run.num_batches = 0.0, 0
    _save(run, 0)
    if run.place.is_main:
        with atomic_open(os.path.join(run.config.output_dir, "history.json")) as f:
            json.dump(run.history, f, indent=2)
        print(f"epoch {run.epoch}: loss {mean_loss:.4f}")


def _save(run: Run, step: int) -> None:
    """Checkpoint at `step` batches into epoch `run.epoch` (rank 0 writes, all ranks wait)."""
    path = ckpt.checkpoint_path(run.config.output_dir, run.global_step)
    if run.place.is_main:
        parts = run.parts
        payload = {
            "config": parts.net.config(),
            "data": run.data.options,
            **training_state(parts.net, parts.optimizer, parts.scheduler),
            "epoch": run.epoch,
            "step": step,
            "global_step": run.global_step,
            "history": run.history,
            "epoch_loss": [run.total_loss, run.num_batches] if step else [0.0, 0],
            "train": dataclasses.asdict(run.config),
        }
        run.hooks("at_checkpoint", run, payload=payload)
        ckpt.save_checkpoint(path, payload)
        ckpt.prune_checkpoints(run.config.output_dir, run.config.keep_checkpoints)
    distributed.barrier(run.place)
    run.checkpoint = path


def _finish(run: Run) -> dict:
    summary = {
        "output_dir": run.config.output_dir,
        "checkpoint": run.checkpoint,
        "epochs_done": run.epoch,
        "loss": run.history[-1]["loss"] if run.history else None,
        "history": run.history,
        "pairs_per_s": run.speed.per_s(),
    }
    run.hooks("at_end", run, summary=summary)
    return summary


if __name__ == "__main__":
    # The torchrun entry lives beside the command now (this module is the library).
    print(
        "error: run `torchrun ... -m extras.howto100m.launch --output_dir=...` "
        "(extras.howto100m.train is no longer a torchrun entry)",
        file=sys.stderr,
    )
    sys.exit(2)
