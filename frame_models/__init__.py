"""Frame- and video-level YouTube-8M classifiers (thesis chapter 3) in Keras 3, by name.

`build(name, num_classes, features, **hparams)` makes a model from the caller's feature list
(`[("rgb", 1024), ("audio", 128)]`), `names()` lists the models, `valid_hparams(name)` a
model's hyper-parameters, `input_mode(name, **hparams)` says how to feed it. Layers are in
`frame_models.layers`, the loss in `frame_models.losses`. The package imports Keras, numpy and
the standard library only, and holds no dataset defaults: the caller passes feature names and
sizes, and fills in its own frame count where `input_mode` gives `num_samples` None.
"""

# Importing these modules registers every model builder, layer and the loss (for load_model).
from frame_models import losses, packed, summary  # noqa: F401
from frame_models.models import (  # noqa: F401
    average,
    cluster,
    dbof,
    nextvlad,
    recurrent,
    transformer,
    video,
)
from frame_models.options import Feature
from frame_models.registry import (
    build,
    get_entry,
    input_mode,
    names,
    register_model,
    valid_hparams,
    valid_overrides,
)

__all__ = [
    "Feature",
    "build",
    "get_entry",
    "input_mode",
    "names",
    "register_model",
    "valid_hparams",
    "valid_overrides",
]
