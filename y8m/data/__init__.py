"""YouTube-8M data: specs (the one place formats are spelled), readers, synthetic data, inspection.

The readers need TensorFlow; they are imported on first use so `y8m.data.specs` stays light.
"""

_READERS = (
    "CorruptReport",
    "iterate",
    "read_frames",
    "read_labels",
    "read_segment_ratings",
    "read_videos",
)

_SEGMENTS = ("read_segment_examples",)

__all__ = list(_READERS + _SEGMENTS)


def __getattr__(name):
    if name in _READERS:
        from y8m.data import readers

        return getattr(readers, name)
    if name in _SEGMENTS:
        from y8m.data import segments

        return getattr(segments, name)
    raise AttributeError(f"module 'y8m.data' has no attribute {name!r}")
