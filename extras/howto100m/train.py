"""Training the joint embedding: Adam, per-epoch decay, checkpoints, resume, torchrun.

Launch single-process (`y8m extras howto100m train ...`) or with torchrun; under torchrun
each process draws its own v videos per step (DistributedSampler) and DDP averages the
gradients, so the effective batch is world_size x v videos x k pairs. Negatives come from
the process's own batch.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from extras.howto100m import checkpoint as ckpt
from extras.howto100m import runtime
from extras.howto100m.captions import load_captions, read_video_list
from extras.howto100m.data import PairMaker, PairOptions, TrainPairs, train_loader, usable_videos
from extras.howto100m.features import FPS_2D, FPS_3D, FeatureStore
from extras.howto100m.loss import MaxMarginRankingLoss
from extras.howto100m.model import Net
from extras.howto100m.text import WordVectors
from y8m.errors import UsageError
from y8m.fileio import atomic_open


@dataclasses.dataclass
class TrainConfig:
    """Every flag of a training run; written to `<output_dir>/config.json`.

    Defaults are the thesis' (5.4.1, 5.5.1): Adam 1e-4, margin 0.1, v=32 videos x k=64
    pairs, 4096-d embedding, p=0.5, 5 s clips, 20 words; epochs and decay from the README.
    """

    captions: str
    features_2d: str
    word2vec: str
    output_dir: str
    features_3d: str = ""
    videos: str = ""
    epochs: int = 15
    videos_per_batch: int = 32
    pairs_per_video: int = 64
    embd_dim: int = 4096
    sentence_dim: int = -1
    mask_padding: bool = False
    lr: float = 1e-4
    lr_decay: float = 0.9
    margin: float = 0.1
    negative_weighting: bool = True
    hard_negative_rate: float = 0.5
    min_time: float = 5.0
    min_words: int = 0
    max_words: int = 20
    remove_stop_words: bool = True
    fps_2d: float = FPS_2D
    fps_3d: float = FPS_3D
    word2vec_limit: int = 0
    num_workers: int = 0
    seed: int = 1
    device: str = "auto"
    checkpoint_every: int = 0
    keep_checkpoints: int = 3
    progress: bool = True

    def check(self) -> None:
        """Raises UsageError for values no run can use."""
        positive = ("epochs", "videos_per_batch", "pairs_per_video", "embd_dim", "max_words")
        for name in positive:
            if getattr(self, name) < 1:
                raise UsageError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0 or not 0 < self.lr_decay <= 1:
            raise UsageError("--lr must be > 0 and --lr_decay in (0, 1]")
        if not 0 <= self.hard_negative_rate < 1:
            raise UsageError(
                f"--hard_negative_rate must be in [0, 1), got {self.hard_negative_rate}"
            )
        if not self.output_dir:
            raise UsageError("--output_dir is required")

    def pair_options(self) -> PairOptions:
        return PairOptions(self.min_time, self.min_words, self.max_words)


def data_options(config: TrainConfig) -> dict:
    """How pairs were built; saved in checkpoints so eval/embed/localize build them alike."""
    return {
        **dataclasses.asdict(config.pair_options()),
        "remove_stop_words": config.remove_stop_words,
        "fps_2d": config.fps_2d,
        "fps_3d": config.fps_3d,
        "two_streams": bool(config.features_3d),
    }


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


def fit(config: TrainConfig) -> dict:
    """Trains (or resumes training) and returns a summary.

    Re-running with the same `output_dir` resumes from its newest checkpoint, inside an
    epoch when `checkpoint_every` saved one, and stops at once if all epochs are done.

    Returns:
        {"output_dir", "checkpoint", "epochs_done", "loss", "history", "pairs_per_s"}.
    """
    config.check()
    info = runtime.setup_distributed(config.device)
    try:
        return _fit(config, info)
    finally:
        runtime.teardown_distributed()


def _fit(config: TrainConfig, info: runtime.Distributed) -> dict:
    torch.manual_seed(config.seed)
    captions = load_captions(config.captions)
    store = FeatureStore(config.features_2d, config.features_3d, config.fps_2d, config.fps_3d)
    split = read_video_list(config.videos) if config.videos else None
    videos = usable_videos(captions, store, split)
    words = WordVectors.load(config.word2vec, config.word2vec_limit, config.remove_stop_words)
    maker = PairMaker(captions, store, words, config.pair_options())
    dataset = TrainPairs(maker, videos, config.pairs_per_video, config.seed)

    net = Net(
        embd_dim=config.embd_dim,
        video_dim=store.video_dim(videos[0]),
        we_dim=words.dim,
        sentence_dim=config.sentence_dim,
        mask_padding=config.mask_padding,
    ).to(info.device)  # before the optimizer, so a resumed Adam state lands on the device
    options = data_options(config)
    trainable = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_decay)
    epoch, skip, global_step, history = 0, 0, 0, []
    total_loss, num_batches = 0.0, 0

    latest = ckpt.latest_checkpoint(config.output_dir)
    if latest:
        payload = torch.load(latest, map_location="cpu", weights_only=True)
        _check_resume(payload, net.config(), options, config.output_dir)
        net.load_state_dict(payload["state_dict"], strict=True)
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        epoch, skip = payload["epoch"], payload["step"]
        global_step, history = payload["global_step"], list(payload["history"])
        total_loss, num_batches = payload.get("epoch_loss", [0.0, 0])
        if info.is_main:
            print(f"resuming from {latest} (epoch {epoch + 1}, step {skip})")
    model = net
    if info.enabled:
        ids = [info.device.index] if info.device.type == "cuda" else None
        model = DistributedDataParallel(net, device_ids=ids)
    if info.is_main:
        os.makedirs(config.output_dir, exist_ok=True)
        with atomic_open(os.path.join(config.output_dir, "config.json")) as f:
            json.dump(dataclasses.asdict(config), f, indent=2)

    loss_fn = MaxMarginRankingLoss(
        config.margin, config.negative_weighting, config.hard_negative_rate
    )

    def save(next_epoch: int, step: int) -> str:
        path = ckpt.checkpoint_path(config.output_dir, global_step)
        if info.is_main:
            ckpt.save_checkpoint(
                path,
                {
                    "config": net.config(),
                    "data": options,
                    "state_dict": net.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "epoch": next_epoch,
                    "step": step,
                    "global_step": global_step,
                    "history": history,
                    "epoch_loss": [total_loss, num_batches] if step else [0.0, 0],
                    "train": dataclasses.asdict(config),
                },
            )
            ckpt.prune_checkpoints(config.output_dir, config.keep_checkpoints)
        runtime.barrier(info)
        return path

    pairs_seen, seconds = 0, 0.0
    last_path = latest
    model.train()
    while epoch < config.epochs:
        loader = train_loader(
            dataset,
            config.videos_per_batch,
            epoch,
            config.seed,
            skip_batches=skip,
            num_workers=config.num_workers,
            distributed=info.enabled,
            pin_memory=info.device.type == "cuda",
        )
        bar = tqdm(
            loader,
            desc=f"epoch {epoch + 1}/{config.epochs}",
            unit="batch",
            disable=not (config.progress and info.is_main),
        )
        tick = time.perf_counter()
        for step, batch in enumerate(bar, start=skip + 1):
            video = batch["video"].to(info.device, non_blocking=True)  # (v, k, D)
            text = batch["text"].to(info.device, non_blocking=True)  # (v, k, W, we)
            k = video.shape[1]
            similarity = model(video.flatten(0, 1), text.flatten(0, 1))  # (v k, v k)
            loss = loss_fn(similarity, n_pair=k)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            global_step += 1
            total_loss += float(loss.detach())
            num_batches += 1
            now = time.perf_counter()
            pairs_seen += similarity.shape[0]
            seconds += now - tick
            tick = now
            bar.set_postfix(
                loss=f"{total_loss / num_batches:.4f}", pairs_s=f"{pairs_seen / seconds:.0f}"
            )
            if config.checkpoint_every and global_step % config.checkpoint_every == 0:
                last_path = save(epoch, step)
        bar.close()
        mean_loss = runtime.average(total_loss / max(num_batches, 1), info)
        history.append(
            {"epoch": epoch + 1, "loss": mean_loss, "lr": optimizer.param_groups[0]["lr"]}
        )
        scheduler.step()
        epoch, skip = epoch + 1, 0
        total_loss, num_batches = 0.0, 0
        last_path = save(epoch, 0)
        if info.is_main:
            with atomic_open(os.path.join(config.output_dir, "history.json")) as f:
                json.dump(history, f, indent=2)
            print(f"epoch {epoch}: loss {mean_loss:.4f}")
    return {
        "output_dir": config.output_dir,
        "checkpoint": last_path,
        "epochs_done": epoch,
        "loss": history[-1]["loss"] if history else None,
        "history": history,
        "pairs_per_s": pairs_seen / seconds if seconds else None,
    }


def main() -> None:
    """Entry point for `torchrun --nproc_per_node=N -m extras.howto100m.train --flag=value ...`."""
    import sys

    import fire

    from extras.howto100m.commands import Commands

    try:
        # The command prints its own summary; fire would echo the dict on every rank.
        fire.Fire(Commands().train, serialize=lambda _: None)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
