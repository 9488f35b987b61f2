"""HowTo100M text-video joint embedding (Miech et al., ICCV 2019; thesis chapter 5) in PyTorch.

`from extras.howto100m import Net, MaxMarginRankingLoss`. Names load on first use, so
importing the package (or its subtitle tools) does not import torch.
"""

import importlib

_EXPORTS = {
    "Net": "extras.howto100m.model",
    "ContextGating": "extras.howto100m.model",
    "GatedEmbeddingUnit": "extras.howto100m.model",
    "SentenceMaxpool": "extras.howto100m.model",
    "MaxMarginRankingLoss": "extras.howto100m.loss",
    "WordVectors": "extras.howto100m.text",
    "load_net": "extras.howto100m.checkpoint",
    "retrieval_metrics": "extras.howto100m.retrieval",
    "align_steps": "extras.howto100m.localize",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
