"""Parameter counts of the registered models, beside the figures the thesis and references quote."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from typing import Any

import keras

from frame_models import options, registry

# Sizes quoted in the thesis (section 3.5.8), for 4716 classes (2017 vocabulary). They match
# 128 rgb clusters for (gated) NetVLAD and the starter code's last-layer LSTM state better than
# the Table 3.1 defaults; see docs/models.md.
THESIS_PARAMS = {"netvlad": 160_000_000, "gated_netvlad": 180_000_000, "lstm": 40_000_000}
# Trainable parameters of other references' models at their defaults, for 3862 classes (2018
# vocabulary) and rgb 1024 + audio 128: NeXtVLAD's best single branch (K 112, r 16) and its
# 3-branch final submission, as recounted in winners_facts.md 1.4 (the paper rounds them to 79M
# and 237M).
REFERENCE_PARAMS = {"nextvlad": 78_600_000, "mix_nextvlad": 235_900_000}


def count_params(
    name: str, num_classes: int, features: Any, *, trainable_only: bool = False, **hparams: Any
) -> int:
    """Number of weights of `build(name, num_classes, features, **hparams)`: all of them (batch
    norm moving statistics included), or the trainable ones with `trainable_only`.

    The model is built without allocating its weights (deferred in a `keras.StatelessScope`), in
    a short-lived thread: Keras keeps the pending variables in thread-local state, which goes
    away with the thread, so nothing of the count leaks into the caller's Keras session and a
    300M-parameter model is counted in well under a second.

    Raises:
        ValueError: as `frame_models.build`.
    """
    result: dict[str, Any] = {}

    def count() -> None:
        try:
            with keras.StatelessScope(initialize_variables=False):
                model = registry.build(name, num_classes, features, **hparams)
                weights = model.trainable_weights if trainable_only else model.weights
                result["params"] = sum(math.prod(w.shape) for w in weights)
        except BaseException as error:  # re-raised in the caller's thread
            result["error"] = error

    thread = threading.Thread(target=count, name=f"count_params_{name}")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return int(result["params"])


def parameter_table(
    num_classes: int,
    frame_features: Any,
    video_features: Any,
    names: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """One row per model: its parameter count, float32 size, and the thesis's or reference's figure.

    Every model is built with its default hyper-parameters.

    Args:
        num_classes: C used to build every model (the thesis figures are for 4716).
        frame_features: the `features` of the frame-level models, as for `frame_models.build`
            (the thesis figures are for rgb 1024 + audio 128).
        video_features: the `features` of the video-level models.
        names: registry names (default: all, sorted).

    Returns:
        Rows `{"name", "params", "trainable_params", "float32_mb", "thesis_params",
        "reference_params"}`: `float32_mb` is `4 * params / 1e6`; `thesis_params` is the thesis's quoted count (for
        4716 classes) or None; `reference_params` is another reference's trainable count (for
        3862 classes, see REFERENCE_PARAMS) or None.

    Raises:
        ValueError: an unknown name, a bad `num_classes` or a bad feature list.
    """
    frame_features = options.features(frame_features)
    video_features = options.features(video_features)
    rows = []
    for name in registry.names() if names is None else list(names):
        features = frame_features if registry.get_entry(name).frame_level else video_features
        params = count_params(name, num_classes, features)
        trainable = count_params(name, num_classes, features, trainable_only=True)
        rows.append(
            {
                "name": name,
                "params": params,
                "trainable_params": trainable,
                "float32_mb": round(4 * params / 1e6, 1),
                "thesis_params": THESIS_PARAMS.get(name),
                "reference_params": REFERENCE_PARAMS.get(name),
            }
        )
    return rows
