"""y8m: a YouTube-8M video classification toolkit (data, metrics, training, ensembles)."""

__version__ = "0.1.0"
