"""The model registry: one name per architecture, a builder behind each, overrides checked.

Builders register with `@register_model(family, sample=...)`; `frame_models/__init__.py`
imports every builder module, so the registry is complete once `frame_models` is imported.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import keras

from frame_models.options import positive_int
from y8m.data import specs
from y8m.errors import UsageError

# Accepted by every model so one command line works across families; a model that has no use
# for one of them ignores it.
SHARED_OVERRIDES = frozenset(
    {
        "cluster_size",
        "audio_cluster_size",
        "hidden_size",
        "num_mixtures",
        "sample_frames",
        "rnn_cells",
        "rnn_layers",
        "gating_after_pooling",
        "gating_after_moe",
        "gating",
        "fusion",
        "feature_names",
        "feature_sizes",
        "moe_l2",
        "l2_penalty",
        "input_batch_norm",
    }
)
SAMPLINGS = ("random", "ordered")


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One registered model.

    Attributes:
        name: registry name.
        builder: `(num_classes, **overrides) -> keras.Model`.
        family: the family builder whose keyword-only parameters are the model's own overrides.
        sample: training frame sampling, "random" or "ordered"; None for video-level models.
    """

    name: str
    builder: Callable[..., keras.Model]
    family: Callable[..., keras.Model]
    sample: str | None

    @property
    def own_overrides(self) -> frozenset[str]:
        """Names of the family builder's keyword-only parameters."""
        params = inspect.signature(self.family).parameters.values()
        return frozenset(p.name for p in params if p.kind is p.KEYWORD_ONLY)

    @property
    def summary(self) -> str:
        """First line of the builder's docstring."""
        return (inspect.getdoc(self.builder) or "").splitlines()[0]


_MODELS: dict[str, ModelEntry] = {}


def register_model(family: Callable[..., keras.Model], sample: str | None):
    """Decorator registering a model builder under its function name.

    Args:
        family: the family builder the decorated function calls; its keyword-only parameters
            are the overrides the model accepts (besides `SHARED_OVERRIDES`).
        sample: "random" (frames sampled with replacement), "ordered" (frames in order) or None
            (video-level model).

    Returns:
        The decorator; it returns the function unchanged.
    """
    if sample is not None and sample not in SAMPLINGS:
        raise ValueError(f"sample must be None or one of {SAMPLINGS}, received {sample!r}")

    def decorator(builder: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        name = builder.__name__
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = ModelEntry(name, builder, family, sample)
        return builder

    return decorator


def names() -> list[str]:
    """Sorted names of all registered models."""
    return sorted(_MODELS)


def get_entry(name: str) -> ModelEntry:
    """The registry entry of `name`; a UsageError listing the valid names otherwise."""
    try:
        return _MODELS[name]
    except (KeyError, TypeError):
        raise UsageError(f"unknown model {name!r}: use one of {', '.join(names())}") from None


def valid_overrides(name: str) -> list[str]:
    """Sorted override names `name` accepts (its own and the shared ones)."""
    return sorted(get_entry(name).own_overrides | SHARED_OVERRIDES)


def _applicable(entry: ModelEntry, overrides: dict[str, Any]) -> dict[str, Any]:
    """Overrides without Nones, checked, restricted to those the family builder takes."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    own = entry.own_overrides
    unknown = sorted(set(overrides) - own - SHARED_OVERRIDES)
    if unknown:
        raise UsageError(
            f"model {entry.name!r} has no option(s) {', '.join(unknown)}: valid options are "
            f"{', '.join(valid_overrides(entry.name))}"
        )
    return {k: v for k, v in overrides.items() if k in own}


def build(name: str, num_classes: int, **overrides: Any) -> keras.Model:
    """Builds the registered model `name`.

    Args:
        name: a registry name, see `names()`.
        num_classes: C, size of the output.
        **overrides: hyper-parameters; None values are dropped so defaults apply. Shared names
            (`SHARED_OVERRIDES`) are accepted by every model and ignored where they do not apply.

    Returns:
        An uncompiled `keras.Model` from a dict of inputs (frame level: one (B, T, D) input per
        feature and `num_frames` (B,) int32; video level: one (B, D) input per feature) to
        (B, C) float32 probabilities.

    Raises:
        UsageError: unknown name, unknown override, or a bad override value.
    """
    entry = get_entry(name)
    num_classes = positive_int("num_classes", num_classes)
    return entry.builder(num_classes, **_applicable(entry, overrides))


def input_mode(name: str, **overrides: Any) -> dict[str, Any]:
    """How the reader should feed `name` during training.

    Args:
        name: a registry name.
        **overrides: the same overrides as for `build`; only `sample_frames` matters here.

    Returns:
        `{"frame_level": bool, "sample": "random" | "ordered" | None, "num_samples": int | None}`:
        cluster-pooling models draw `sample_frames` (default 300) frames with replacement from
        the real frames; recurrent and averaging models read frames in order (`num_samples`
        None); video-level models read no frames (`sample` None).

    Raises:
        UsageError: unknown name or override, or `sample_frames` not a positive integer.
    """
    entry = get_entry(name)
    _applicable(entry, overrides)
    num_samples = None
    if entry.sample == "random":
        value = overrides.get("sample_frames")
        num_samples = specs.MAX_FRAMES if value is None else positive_int("sample_frames", value)
    return {
        "frame_level": entry.sample is not None,
        "sample": entry.sample,
        "num_samples": num_samples,
    }
