"""YouTube-8M data: specs (the one place formats are spelled), readers, synthetic data, inspection."""

from y8m.data.readers import (
    CorruptReport,
    iterate,
    read_frames,
    read_labels,
    read_segment_ratings,
    read_videos,
)

__all__ = [
    "CorruptReport",
    "iterate",
    "read_frames",
    "read_labels",
    "read_segment_ratings",
    "read_videos",
]
