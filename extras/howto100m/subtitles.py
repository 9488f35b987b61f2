"""YouTube subtitle files (WebVTT, SRT; manual or ASR) to clip-caption pairs (thesis 5.3.2).

No torch here: `y8m extras howto100m captions` works with webvtt-py and srt alone.
"""

from __future__ import annotations

import dataclasses
import html
import os
import re
from collections.abc import Iterable, Sequence

from y8m.errors import UsageError

SUBTITLE_EXTENSIONS = (".vtt", ".srt")

_TAG = re.compile(r"<[^>]*>")  # <c>, <i>, <00:00:01.230> word timings, <font ...>
_ASS_TAG = re.compile(r"\{\\[^}]*\}")  # {\an8} placement codes some SRT writers emit
_SPACES = re.compile(r"\s+")
_VTT_TIME = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[.,](\d{1,3}))?$")


@dataclasses.dataclass(frozen=True)
class Cue:
    """One subtitle cue: its interval in seconds and its displayed text lines."""

    start: float
    end: float
    lines: tuple[str, ...]


@dataclasses.dataclass
class Caption:
    """One clip-caption pair: a subtitle line and the interval in which it is uttered."""

    start: float
    end: float
    text: str


def clean_line(line: str) -> str:
    """Strips markup (cue tags, word timings, HTML entities) and collapses whitespace."""
    line = _ASS_TAG.sub("", _TAG.sub("", line))
    return _SPACES.sub(" ", html.unescape(line)).strip()


def _short(err: Exception, limit: int = 120) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _vtt_seconds(stamp: str) -> float:
    match = _VTT_TIME.match(stamp.strip())
    if not match:
        raise ValueError(f"bad timestamp {stamp!r}")
    hours, minutes, seconds, millis = match.groups()
    return (
        int(hours or 0) * 3600
        + int(minutes) * 60
        + int(seconds)
        + int((millis or "0").ljust(3, "0")) / 1000
    )


def read_vtt(path: str) -> list[Cue]:
    """Reads a WebVTT file (cue settings such as `align:start position:0%` are allowed).

    Raises:
        UsageError: the file is not valid WebVTT or cannot be decoded.
    """
    import webvtt

    try:
        captions = webvtt.read(path)
        cues = [
            Cue(_vtt_seconds(c.start), _vtt_seconds(c.end), tuple(c.text.split("\n")))
            for c in captions
        ]
    except (webvtt.errors.MalformedFileError, webvtt.errors.MalformedCaptionError) as err:
        raise UsageError(
            f"{path} is not a valid WebVTT file ({_short(err)}); fix or remove it, or pass --skip_bad"
        ) from err
    except (UnicodeDecodeError, ValueError) as err:
        raise UsageError(
            f"cannot read {path} as UTF-8 WebVTT ({_short(err)}); pass --skip_bad"
        ) from err
    return cues


def read_srt(path: str) -> list[Cue]:
    """Reads a SubRip (.srt) file.

    Raises:
        UsageError: the file is not valid SRT or cannot be decoded.
    """
    import srt

    try:
        with open(path, encoding="utf-8-sig") as f:
            subs = list(srt.parse(f.read()))
    except srt.SRTParseError as err:
        raise UsageError(
            f"{path} is not a valid SRT file ({_short(err)}); fix or remove it, or pass --skip_bad"
        ) from err
    except UnicodeDecodeError as err:
        raise UsageError(
            f"cannot read {path} as UTF-8 SRT ({_short(err)}); pass --skip_bad"
        ) from err
    return [
        Cue(s.start.total_seconds(), s.end.total_seconds(), tuple(s.content.split("\n")))
        for s in subs
    ]


def read_subtitles(path: str) -> list[Cue]:
    """Reads a .vtt or .srt file into cues, sorted by start time.

    Raises:
        UsageError: unknown extension, malformed file, or a file with no cues.
    """
    ext = os.path.splitext(path)[1].lower()
    if ext == ".vtt":
        cues = read_vtt(path)
    elif ext == ".srt":
        cues = read_srt(path)
    else:
        raise UsageError(f"{path}: unknown subtitle extension {ext!r}; expected .vtt or .srt")
    if not cues:
        raise UsageError(f"{path} contains no subtitle cues; remove it or pass --skip_bad")
    return sorted(cues, key=lambda c: (c.start, c.end))


def _rolled_over(previous: Sequence[str], lines: Sequence[str]) -> int:
    """Length of the longest prefix of `lines` that is a suffix of `previous`."""
    for k in range(min(len(previous), len(lines)), 0, -1):
        if tuple(previous[len(previous) - k :]) == tuple(lines[:k]):
            return k
    return 0


def cues_to_captions(cues: Iterable[Cue], max_gap: float = 1.0) -> list[Caption]:
    """Turns cues into one caption per subtitle line, with rolling duplicates removed.

    YouTube ASR tracks roll: each cue shows the previous line again above the new one, and a
    10 ms cue shows the finished line alone. A line repeated from the cue just before (when
    the two are at most `max_gap` seconds apart) is therefore not a new caption; a cue that
    only repeats extends the latest caption, so each caption spans the time its line was
    spoken. In manual tracks nothing repeats and each cue becomes one caption (its lines
    joined with a space).

    Args:
        cues: cues sorted by start time.
        max_gap: seconds between cues up to which a repeated line counts as a duplicate.

    Returns:
        Captions in time order.
    """
    captions: list[Caption] = []
    previous: tuple[str, ...] = ()
    previous_end = float("-inf")
    for cue in cues:
        lines = tuple(text for text in (clean_line(raw) for raw in cue.lines) if text)
        if not lines:
            continue
        end = max(cue.end, cue.start)
        new = list(lines)
        if cue.start - previous_end <= max_gap:
            rolled = _rolled_over(previous, lines)
            # Without a roll, a cue whose lines were all just shown is the same text re-timed.
            new = [] if not rolled and set(lines) <= set(previous) else new[rolled:]
        if new:
            captions.append(Caption(cue.start, end, " ".join(new)))
        elif captions:
            captions[-1].end = max(captions[-1].end, end)
        previous, previous_end = lines, end
    return captions


def video_id_from_path(path: str) -> str:
    """`abc123.en.vtt` -> `abc123` (YouTube ids never contain a dot)."""
    return os.path.basename(path).split(".")[0]


def find_subtitle_files(folder: str, recursive: bool = False) -> list[str]:
    """Sorted .vtt/.srt files in `folder`.

    Raises:
        UsageError: the folder does not exist or holds no subtitle files.
    """
    if not os.path.isdir(folder):
        raise UsageError(f"subtitle folder {folder!r} does not exist")
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found.extend(
            os.path.join(root, f) for f in files if f.lower().endswith(SUBTITLE_EXTENSIONS)
        )
        if not recursive:
            break
    if not found:
        raise UsageError(f"no .vtt or .srt files in {folder!r}")
    return sorted(found)


def captions_to_dict(captions: Sequence[Caption]) -> dict[str, list]:
    """The caption.json entry of one video: parallel `start`, `end`, `text` lists."""
    return {
        "start": [round(c.start, 3) for c in captions],
        "end": [round(c.end, 3) for c in captions],
        "text": [c.text for c in captions],
    }


def build_caption_json(
    files: Sequence[str], max_gap: float = 1.0, skip_bad: bool = False, progress: bool = True
) -> tuple[dict[str, dict[str, list]], list[str]]:
    """Parses subtitle files into the caption.json mapping `video_id -> {start, end, text}`.

    Args:
        files: subtitle paths; the video id is the file name up to its first dot.
        max_gap: see `cues_to_captions`.
        skip_bad: skip unreadable files (returned in the second value) instead of raising.
        progress: show a tqdm bar.

    Returns:
        (captions by video id, list of `path: reason` for skipped files).

    Raises:
        UsageError: a bad file (unless `skip_bad`) or two files for one video id.
    """
    from tqdm import tqdm

    by_video: dict[str, str] = {}
    for path in files:
        vid = video_id_from_path(path)
        if vid in by_video:
            raise UsageError(
                f"two subtitle files for video {vid!r}: {by_video[vid]} and {path}; keep one"
            )
        by_video[vid] = path
    result: dict[str, dict[str, list]] = {}
    skipped: list[str] = []
    for vid, path in tqdm(by_video.items(), desc="subtitles", unit="file", disable=not progress):
        try:
            captions = cues_to_captions(read_subtitles(path), max_gap=max_gap)
        except UsageError as err:
            if not skip_bad:
                raise
            skipped.append(f"{path}: {err}")
            continue
        if not captions:
            skipped.append(f"{path}: no text after removing markup")
            continue
        result[vid] = captions_to_dict(captions)
    return result, skipped
