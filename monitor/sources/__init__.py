"""Sources turn the outside world into raw chunks; the daemon decodes them."""

from monitor.sources.base import Chunk, SourceError

__all__ = ["Chunk", "SourceError"]
