"""Precise BatchNorm statistics for checkpoints that were saved without them.

`train` re-estimates the statistics before each checkpoint (`--precise_bn_batches`) and
records it under `precise_bn`. A checkpoint without that record (written before the feature,
or with `--precise_bn_batches=0`) holds training's running averages; `embed`, `eval` and
`probe` then re-estimate them from the training data named in the checkpoint's
`train_config`, unless they are given `--precise_bn_batches=0`. Plain state_dicts such as the
released `s3d_howto100m.pth` carry no training data and are used as they are.
"""

from __future__ import annotations

import dataclasses

import torch

from extras.milnce.config import TrainConfig
from extras.milnce.s3d import S3D
from extras.milnce.text import Tokenizer
from extras.milnce.train import build_data, reestimate_bn
from extras.runtime.distributed import Distributed
from y8m.errors import UsageError


def needs_precise_bn(meta: dict) -> bool:
    """True for our checkpoints whose BatchNorm statistics were not re-estimated."""
    return "train_config" in meta and not meta.get("precise_bn")


def _training_config(meta: dict, num_workers: int) -> TrainConfig:
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    saved = {k: v for k, v in meta["train_config"].items() if k in known}
    config = TrainConfig(**saved)
    # The batches BatchNorm saw in training: the global batch split over the processes.
    per_process = max(1, config.batch_size // int(meta.get("world_size", 1)))
    return dataclasses.replace(config, batch_size=per_process, num_workers=num_workers)


def ensure_precise_bn(
    model: S3D,
    meta: dict,
    tokenizer: Tokenizer,
    num_batches: int,
    device: torch.device,
    num_workers: int = 2,
    progress: bool = True,
) -> int:
    """Re-estimates `model`'s BatchNorm statistics from its training data when its checkpoint
    has none (see the module docstring); the model is left in eval mode.

    Args:
        model: loaded by `load_model`, with `meta` its checkpoint's metadata.
        tokenizer: any tokenizer of the model (only the videos go through the network).
        num_batches: training batches to average over; 0 skips.
        device: where the model is.
        num_workers, progress: loader processes and the tqdm bar.

    Returns:
        The number of batches used (0 when nothing was done).

    Raises:
        UsageError: the training data named in the checkpoint cannot be read.
    """
    if num_batches <= 0 or not needs_precise_bn(meta):
        return 0
    config = _training_config(meta, num_workers)
    try:
        data = build_data(config, tokenizer, Distributed(device=device))
    except UsageError as err:
        raise UsageError(
            f"the checkpoint's BatchNorm statistics are training's running averages and "
            f"re-estimating them needs its training data (--videos={config.videos!r}, "
            f"--captions={config.captions!r}, as given to train, relative to its working "
            f"directory): {err}. Run from that directory, or pass --precise_bn_batches=0 to "
            "use the stored statistics"
        ) from err
    data.dataset.set_epoch(max(0, int(meta.get("epoch", 1)) - 1))
    used = reestimate_bn(model, data.loader, num_batches, device, progress)
    model.eval()
    print(
        f"re-estimated BatchNorm statistics over {used} training batches of "
        f"{config.batch_size} clips (the checkpoint has none; --precise_bn_batches=0 skips this)"
    )
    return used
