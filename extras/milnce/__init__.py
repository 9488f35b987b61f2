"""MIL-NCE: end-to-end video-text training of S3D from narrated clips (thesis chapter 6).

Names are imported on first use, so `extras.milnce.commands` loads without torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "S3D": "extras.milnce.s3d",
    "STConv3D": "extras.milnce.s3d",
    "SelfGating": "extras.milnce.s3d",
    "InceptionBlock": "extras.milnce.s3d",
    "space_to_depth": "extras.milnce.s3d",
    "SentenceEmbedding": "extras.milnce.text",
    "Tokenizer": "extras.milnce.text",
    "build_dictionary": "extras.milnce.text",
    "load_dictionary": "extras.milnce.text",
    "save_dictionary": "extras.milnce.text",
    "MILNCELoss": "extras.milnce.loss",
    "milnce_loss": "extras.milnce.loss",
    "all_gather_with_grad": "extras.runtime.distributed",
    "retrieval_metrics": "extras.milnce.metrics",
    "build_model": "extras.milnce.checkpoint",
    "load_model": "extras.milnce.checkpoint",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'extras.milnce' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
