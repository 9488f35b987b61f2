"""Precise BatchNorm statistics: running mean and variance re-estimated as exact averages.

During training each BatchNorm layer normalises a batch by that batch's own statistics and
keeps an exponential moving average (momentum 0.1) of them for eval mode. Early in a run, or
when the weights still move fast, that average lags behind the network and eval-mode outputs
are wrong (a short toy run maps every video to the same point). PreciseBN (Wu & Johnson,
"Rethinking 'Batch' in BatchNorm", 2021; `fvcore.nn.precise_bn` in detectron2 and PySlowFast)
replaces the average by population statistics measured with the final weights.

`recompute_bn_stats` runs the model over training batches with the BatchNorm layers in train
mode (everything else in eval mode), with no gradient and the weights untouched, and sets:

    running_mean = the mean of every value a layer saw, per channel, over all the batches
    running_var  = their unbiased variance, per channel, pooled over all the batches
                   (sum of squared deviations from that mean / (count - 1))

The pooled variance is the population one, E[x^2] - E[x]^2 over all values, not the mean of
the per-batch variances (fvcore's default, which misses the spread of the batch means; it
matters when a layer sees few values per batch, e.g. 1x1 maps late in S3D). Moments are merged
batch by batch in float64 (Chan et al.), so the result does not depend on the batch order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from tqdm.auto import tqdm


def batch_norm_layers(model: nn.Module) -> list[_BatchNorm]:
    """The BatchNorm layers (any dimension, SyncBatchNorm too) that keep running statistics."""
    return [
        m
        for m in model.modules()
        if isinstance(m, _BatchNorm) and m.track_running_stats and m.running_mean is not None
    ]


def running_stats(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the BatchNorm buffers (running_mean, running_var, num_batches_tracked), keyed
    as in `model.state_dict()`; `load_running_stats` puts them back."""
    names = {id(m): name for name, m in model.named_modules()}
    stats = {}
    for layer in batch_norm_layers(model):
        prefix = names[id(layer)]
        for buffer in ("running_mean", "running_var", "num_batches_tracked"):
            value = getattr(layer, buffer, None)
            if value is not None:
                stats[f"{prefix}.{buffer}" if prefix else buffer] = value.detach().clone()
    return stats


def load_running_stats(model: nn.Module, stats: dict[str, torch.Tensor]) -> None:
    """Writes buffers saved by `running_stats` back (every key must name a buffer)."""
    buffers = dict(model.named_buffers())
    unknown = sorted(set(stats) - set(buffers))
    if unknown:
        raise KeyError(f"not BatchNorm buffers of this model: {unknown[:3]}")
    with torch.no_grad():
        for name, value in stats.items():
            buffers[name].copy_(value)


@dataclasses.dataclass
class _Moments:
    """Count, mean and sum of squared deviations per channel, merged batch by batch."""

    count: float = 0.0
    mean: torch.Tensor | None = None  # float64 [C]
    m2: torch.Tensor | None = None  # float64 [C]

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().float()
        dims = [d for d in range(x.ndim) if d != 1]  # all but the channel axis
        var, mean = torch.var_mean(x, dim=dims, correction=0)
        n = float(x.numel() // x.shape[1])
        mean, m2 = mean.double(), var.double() * n
        if self.mean is None:
            self.count, self.mean, self.m2 = n, mean, m2
            return
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta.square() * (self.count * n / total)
        self.count = total


@torch.no_grad()
def recompute_bn_stats(
    model: nn.Module,
    batches: Iterable,
    forward: Callable[[object], object],
    num_batches: int = 200,
    progress: bool = True,
    desc: str = "precise BN",
) -> int:
    """Sets every BatchNorm layer's running mean and variance to the exact statistics of its
    inputs over the first `num_batches` of `batches` (fewer if `batches` ends first).

    Args:
        model: the network (bare, not DDP-wrapped), on its device. Its train/eval modes are
            restored afterwards; parameters and `num_batches_tracked` are not changed, nor
            the statistics of a layer the forward never reaches.
        batches: an iterable of batches (e.g. the training DataLoader).
        forward: runs `model` on one batch (moving it to the device as needed).
        num_batches: how many batches to average over; 0 changes nothing.
        progress: show a tqdm bar (batches and batches/s).
        desc: the bar's label.

    Returns:
        The number of batches used (0 when the model has no BatchNorm layer).
    """
    layers = batch_norm_layers(model)
    if not layers or num_batches <= 0:
        return 0
    modes = {m: m.training for m in model.modules()}
    tracked = [layer.num_batches_tracked.clone() for layer in layers]
    moments = [_Moments() for _ in layers]
    handles = [
        layer.register_forward_pre_hook(lambda _, args, m=m: m.add(args[0]))
        for layer, m in zip(layers, moments)
    ]
    model.eval()
    for layer in layers:
        layer.train()  # each batch normalised by its own statistics, as in training
    try:
        total = min(num_batches, len(batches))  # a DataLoader knows its batches
    except TypeError:
        total = num_batches
    used = 0
    try:
        with tqdm(total=total, desc=desc, unit="batch", disable=not progress) as bar:
            for batch in batches:
                forward(batch)
                used += 1
                bar.update()
                if used == num_batches:
                    break
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.train(training)
    if used == 0:
        raise ValueError("no batch to re-estimate BatchNorm statistics from")
    for layer, m, count in zip(layers, moments, tracked):
        if m.mean is None:  # not on the forward path (e.g. an unused layer): left as it was
            continue
        layer.running_mean.copy_(m.mean.to(layer.running_mean.dtype))
        layer.running_var.copy_((m.m2 / (m.count - 1)).to(layer.running_var.dtype))
        layer.num_batches_tracked.copy_(count)
    return used
