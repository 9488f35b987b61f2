"""Generated test videos (the writer lives in the package, for `y8m bench extract` too)."""

from y8m.extract.media import write_video

__all__ = ["write_video"]
