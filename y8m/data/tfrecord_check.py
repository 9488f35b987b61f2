"""Cheap structural checks of TFRecord files, so a damaged shard is reported by name.

TensorFlow's reader silently stops at a truncated final record and reports a corrupted one
without its file; these checks fill that gap.
"""

from __future__ import annotations

import os
import struct

_HEADER = 12  # uint64 length + uint32 masked crc of the length
_FOOTER = 4  # uint32 masked crc of the data


def count_framed_records(path: str) -> tuple[int, str | None]:
    """Walks the record framing of one file without reading payloads.

    Returns:
        (number of complete records, problem description or None if the file is intact).
    """
    size = os.path.getsize(path)
    n = 0
    offset = 0
    with open(path, "rb") as f:
        while offset < size:
            header = f.read(_HEADER)
            if len(header) < _HEADER:
                return n, f"truncated record header at byte {offset} (record {n})"
            (length,) = struct.unpack("<Q", header[:8])
            end = offset + _HEADER + length + _FOOTER
            if end > size:
                return n, f"truncated record {n} at byte {offset} (needs {end - size} more bytes)"
            offset = end
            f.seek(offset)
            n += 1
    return n, None
