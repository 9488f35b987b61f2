"""The model registry: one name per architecture, a builder behind each, hyper-parameters checked.

The builder contract. A model is registered with

    @register_model(family, sample=..., exclude=(...))
    def name(num_classes, features, **hparams) -> keras.Model: ...

- `name` (the function's name) is the registry name.
- The builder receives `num_classes` as an int >= 1 and `features` as a non-empty tuple of
  `Feature(name, size)` (distinct names, none `num_frames`, sizes ints >= 1), both checked
  here. `hparams` are the caller's keyword arguments, without `None` values, each one of the
  model's `hparams` (below). Their values are unchecked: the builder checks them with
  `frame_models.options` and raises `ValueError` naming the option.
- The builder returns an uncompiled `keras.Model` from a dict of inputs to (B, C) float32
  probabilities. A frame-level model (`sample` not None) takes one (B, T, D) float input per
  feature, named after it, and `num_frames` (B,) int32. A video-level model (`sample` None)
  takes one (B, D) float input per feature.
- The builder calls `family(num_classes, features, <its fixed positional arguments>,
  **hparams)`. The family's keyword-only parameters, less `exclude`, are the model's
  hyper-parameters. `exclude` lists those the variant never uses, such as the MoE's
  `num_mixtures` for a logistic classifier, so they are rejected rather than ignored.
- Random-sampling models also take `sample_frames`, the frames the reader draws per video for
  training. It shapes no layer: `input_mode` reads it, and `build` checks it and drops it.
- A family may take `sample_frames` as a keyword-only parameter of its own (the recurrent
  models subsample the frames inside the model). `build` then checks it and passes it through;
  for an ordered model `input_mode` still gives `num_samples` None, as the reader feeds such a
  model every frame in order.

`frame_models/__init__.py` imports every builder module, so the registry is complete once
`frame_models` is imported. Every error here is a `ValueError` with a one-line message.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import keras

from frame_models import options

SAMPLINGS = ("random", "ordered")
# The hyper-parameter that random-sampling models take beside their family's parameters.
SAMPLE_FRAMES = "sample_frames"


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One registered model.

    Attributes:
        name: registry name.
        builder: `(num_classes, features, **hparams) -> keras.Model`.
        family: the family builder the builder calls; its keyword-only parameters, less
            `exclude`, are the model's hyper-parameters.
        sample: training frame sampling, "random" or "ordered"; None for video-level models.
        exclude: keyword-only parameters of `family` that this model does not take.
    """

    name: str
    builder: Callable[..., keras.Model]
    family: Callable[..., keras.Model]
    sample: str | None
    exclude: frozenset[str] = frozenset()

    @property
    def family_hparams(self) -> frozenset[str]:
        """The family's keyword-only parameters less `exclude`: what the builder is passed."""
        return _keyword_only(self.family) - self.exclude

    @property
    def hparams(self) -> frozenset[str]:
        """Names of the hyper-parameters the model takes (see the module docstring)."""
        names = self.family_hparams
        return (names | {SAMPLE_FRAMES}) if self.sample == "random" else names

    @property
    def frame_level(self) -> bool:
        """Whether the model reads frames (and `num_frames`) rather than video-level vectors."""
        return self.sample is not None

    @property
    def summary(self) -> str:
        """First line of the builder's docstring."""
        return (inspect.getdoc(self.builder) or "").splitlines()[0]


_MODELS: dict[str, ModelEntry] = {}


def _keyword_only(function: Callable[..., Any]) -> frozenset[str]:
    params = inspect.signature(function).parameters.values()
    return frozenset(p.name for p in params if p.kind is p.KEYWORD_ONLY)


def register_model(
    family: Callable[..., keras.Model], sample: str | None, exclude: tuple[str, ...] = ()
):
    """Decorator registering a model builder under its function name.

    Args:
        family: the family builder the decorated function calls; its keyword-only parameters
            are the hyper-parameters the model accepts.
        sample: "random" (frames sampled with replacement; the model also takes
            `sample_frames`), "ordered" (frames in order; `sample_frames` only if the family
            takes it) or None (video-level model).
        exclude: keyword-only parameters of `family` that this model does not use; they are
            rejected like unknown names.

    Returns:
        The decorator; it returns the function unchanged.

    Raises:
        ValueError: a bad `sample`, an `exclude` name `family` does not take, or a name
            registered twice.
    """
    if sample is not None and sample not in SAMPLINGS:
        raise ValueError(f"sample must be None or one of {SAMPLINGS}, received {sample!r}")
    stray = sorted(set(exclude) - _keyword_only(family))
    if stray:
        raise ValueError(f"exclude names {stray} that {family.__name__} does not take")

    def decorator(builder: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        name = builder.__name__
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = ModelEntry(name, builder, family, sample, frozenset(exclude))
        return builder

    return decorator


def names() -> list[str]:
    """Sorted names of all registered models."""
    return sorted(_MODELS)


def get_entry(name: str) -> ModelEntry:
    """The registry entry of `name`; a ValueError listing the valid names otherwise."""
    try:
        return _MODELS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model {name!r}: use one of {', '.join(names())}") from None


def valid_hparams(name: str) -> list[str]:
    """Sorted names of the hyper-parameters `name` accepts."""
    return sorted(get_entry(name).hparams)


# The name used before hyper-parameters were checked per model.
valid_overrides = valid_hparams


def _checked(entry: ModelEntry, hparams: dict[str, Any]) -> dict[str, Any]:
    """`hparams` without Nones; a ValueError if the model does not take one of them."""
    hparams = {k: v for k, v in hparams.items() if v is not None}
    unknown = sorted(set(hparams) - entry.hparams)
    if unknown:
        raise ValueError(
            f"model {entry.name!r} has no option(s) {', '.join(unknown)}: valid options are "
            f"{', '.join(valid_hparams(entry.name))}"
        )
    if SAMPLE_FRAMES in hparams:
        hparams[SAMPLE_FRAMES] = options.positive_int(SAMPLE_FRAMES, hparams[SAMPLE_FRAMES])
    return hparams


def build(name: str, num_classes: int, features: Any, **hparams: Any) -> keras.Model:
    """Builds the registered model `name`.

    Args:
        name: a registry name, see `names()`.
        num_classes: C, size of the output.
        features: the input streams in order, a non-empty sequence of `(name, size)` pairs
            (or of objects with `name` and `size`, or a name -> size mapping), such as
            `[("rgb", 1024), ("audio", 128)]` for a frame-level model or
            `[("mean_rgb", 1024), ("mean_audio", 128)]` for a video-level one. The first
            stream is the one `cluster_size` applies to.
        **hparams: the model's hyper-parameters, see `valid_hparams(name)`; None values are
            dropped so defaults apply.

    Returns:
        An uncompiled `keras.Model` from a dict of inputs (frame level: one (B, T, D) input per
        feature and `num_frames` (B,) int32; video level: one (B, D) input per feature) to
        (B, C) float32 probabilities.

    Raises:
        ValueError: unknown name, a hyper-parameter the model does not take, a bad value, or a
            bad feature list.
    """
    entry = get_entry(name)
    num_classes = options.positive_int("num_classes", num_classes)
    features = options.features(features)
    hparams = _checked(entry, hparams)
    if SAMPLE_FRAMES not in entry.family_hparams:
        hparams.pop(SAMPLE_FRAMES, None)
    return entry.builder(num_classes, features, **hparams)


def input_mode(name: str, **hparams: Any) -> dict[str, Any]:
    """How the reader should feed `name` during training.

    Args:
        name: a registry name.
        **hparams: the same hyper-parameters as for `build` (checked by name); only
            `sample_frames` matters here.

    Returns:
        `{"frame_level": bool, "sample": "random" | "ordered" | None, "num_samples": int | None}`:
        cluster-pooling models draw frames with replacement from the real frames
        (`sample` "random"; `num_samples` is `sample_frames`, or None when not given, for the
        caller to fill in with its maximum frame count); recurrent and averaging models read
        frames in order (`sample` "ordered", `num_samples` None, also when a recurrent model
        takes `sample_frames` to subsample inside the model); video-level models read no
        frames (`frame_level` False, `sample` None).

    Raises:
        ValueError: unknown name, a hyper-parameter the model does not take, or
            `sample_frames` not a positive integer.
    """
    entry = get_entry(name)
    hparams = _checked(entry, hparams)
    return {
        "frame_level": entry.frame_level,
        "sample": entry.sample,
        "num_samples": hparams.get(SAMPLE_FRAMES) if entry.sample == "random" else None,
    }
