"""The one place that spells YouTube-8M record formats: keys, dtypes, sizes, constants, headers.

Every other module imports these names; see docs/formats.md and reference/yt8m_facts.md 1-3.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Quantisation of frame features (official starter code, utils.Dequantize defaults).
MAX_QUANTIZED_VALUE = 2.0
MIN_QUANTIZED_VALUE = -2.0
QUANTIZE_RANGE = MAX_QUANTIZED_VALUE - MIN_QUANTIZED_VALUE
DEQUANTIZE_SCALE = QUANTIZE_RANGE / 255.0
# The range/512 term is a half-bin offset; kept exactly so values match the official readers.
DEQUANTIZE_BIAS = QUANTIZE_RANGE / 512.0 + MIN_QUANTIZED_VALUE

MAX_FRAMES = 300
SEGMENT_SIZE = 5  # 2019 segments are 5 frames = 5 seconds
SUBMISSION_TOP_K = 20
SEGMENT_MAX_PRED = 100_000

# Context and feature-list keys.
LABELS_KEY = "labels"
SEGMENT_LABELS_KEY = "segment_labels"
SEGMENT_START_TIMES_KEY = "segment_start_times"
SEGMENT_END_TIMES_KEY = "segment_end_times"
SEGMENT_SCORES_KEY = "segment_scores"

# Kaggle submission headers (reference 3).
VIDEO_SUBMISSION_HEADER = ("VideoId", "LabelConfidencePairs")
SEGMENT_SUBMISSION_HEADER = ("Class", "Segments")

VOCABULARY_FILE = "vocabulary.csv"
VOCABULARY_COLUMNS = (
    "Index",
    "TrainVideoCount",
    "KnowledgeGraphId",
    "Name",
    "WikiUrl",
    "Vertical1",
    "Vertical2",
    "Vertical3",
    "WikiDescription",
)
SEGMENT_LABEL_IDS_FILE = "segment_label_ids.csv"
SEGMENT_LABEL_IDS_COLUMN = "Index"

SPLITS = ("train", "validate", "test")


@dataclasses.dataclass(frozen=True)
class Feature:
    """One feature stream: its record key and its dimension."""

    name: str
    size: int


RGB = Feature("rgb", 1024)
AUDIO = Feature("audio", 128)
MEAN_RGB = Feature("mean_rgb", 1024)
MEAN_AUDIO = Feature("mean_audio", 128)
FRAME_FEATURES = (RGB, AUDIO)
VIDEO_FEATURES = (MEAN_RGB, MEAN_AUDIO)
KNOWN_FEATURE_SIZES = {f.name: f.size for f in FRAME_FEATURES + VIDEO_FEATURES}
FRAME_TO_VIDEO_FEATURE = {"rgb": "mean_rgb", "audio": "mean_audio"}


@dataclasses.dataclass(frozen=True)
class Release:
    """One official dataset release.

    Attributes:
        version: 2017 (v2), 2018 (v3) or 2019 (segment-rated validate/test).
        num_classes: vocabulary size.
        id_key: context key of the video id (`video_id` in 2017, `id` after).
        has_segments: validate/test frame records carry segment ratings.
        num_rated_classes: classes with segment ratings (2019 only).
    """

    version: int
    num_classes: int
    id_key: str
    has_segments: bool = False
    num_rated_classes: int = 0


RELEASES = {
    2017: Release(2017, 4716, "video_id"),
    2018: Release(2018, 3862, "id"),
    2019: Release(2019, 3862, "id", has_segments=True, num_rated_classes=1000),
}
DEFAULT_VERSION = 2018


def release(version: int | str | None) -> Release:
    """The `Release` for a version number; a ValueError naming the valid ones otherwise."""
    from y8m.errors import UsageError

    if version is None:
        version = DEFAULT_VERSION
    try:
        return RELEASES[int(version)]
    except (KeyError, ValueError, TypeError):
        raise UsageError(
            f"unknown dataset version {version!r}: use one of {', '.join(map(str, RELEASES))}"
        ) from None


def dequantize(q: np.ndarray) -> np.ndarray:
    """uint8 codes -> float32 features with the official formula `q * 4/255 + 4/512 - 2`."""
    return (
        np.asarray(q, np.float32) * np.float32(DEQUANTIZE_SCALE) + np.float32(DEQUANTIZE_BIAS)
    ).astype(np.float32)


def quantize(x: np.ndarray) -> np.ndarray:
    """float features -> uint8 codes as the official extractor does (clip to [-2, 2], round)."""
    x = np.clip(np.asarray(x, np.float64), MIN_QUANTIZED_VALUE, MAX_QUANTIZED_VALUE)
    return np.round((x - MIN_QUANTIZED_VALUE) * 255.0 / QUANTIZE_RANGE).astype(np.uint8)


def parse_feature_list(
    feature_names, feature_sizes=None, frame_level: bool = True
) -> tuple[Feature, ...]:
    """Features from CLI-style values: 'rgb,audio' / [1024, 128] or lists; sizes default by name."""
    from y8m.errors import UsageError

    if feature_names is None:
        return FRAME_FEATURES if frame_level else VIDEO_FEATURES
    names = _split(feature_names)
    if feature_sizes is None:
        missing = [n for n in names if n not in KNOWN_FEATURE_SIZES]
        if missing:
            raise UsageError(f"no known size for feature(s) {missing}: pass --feature_sizes")
        sizes = [KNOWN_FEATURE_SIZES[n] for n in names]
    else:
        try:
            sizes = [int(s) for s in _split(feature_sizes)]
        except ValueError:
            raise UsageError(
                f"--feature_sizes must be integers, one per feature, received {feature_sizes!r}"
            ) from None
    if len(names) != len(sizes) or not names:
        raise UsageError(
            f"--feature_names {names} and --feature_sizes {sizes} must be non-empty lists of equal length"
        )
    return tuple(Feature(n, s) for n, s in zip(names, sizes))


def segment_id(video_id: str, start_time: int) -> str:
    """The 2019 segment id `videoid:start`."""
    return f"{video_id}:{int(start_time)}"


def _split(value) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).split(",") if v.strip()]
