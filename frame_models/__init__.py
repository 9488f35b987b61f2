"""Frame- and video-level YouTube-8M classifiers (thesis chapter 3) in Keras 3, by name.

`build(name, num_classes, **overrides)` makes a model, `names()` lists them, `input_mode(name)`
says how to feed it. Layers are in `frame_models.layers`, the loss in `frame_models.losses`.
"""

# Importing these modules registers every model builder, layer and the loss (for load_model).
from frame_models import losses, summary  # noqa: F401
from frame_models.models import average, cluster, recurrent, video  # noqa: F401
from frame_models.registry import (
    SHARED_OVERRIDES,
    build,
    get_entry,
    input_mode,
    names,
    register_model,
    valid_overrides,
)

__all__ = [
    "SHARED_OVERRIDES",
    "build",
    "get_entry",
    "input_mode",
    "names",
    "register_model",
    "valid_overrides",
]
