"""What every source yields: raw chunks with where they came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from slices.errors import SlicewatchError


class SourceError(SlicewatchError):
    """A source that cannot be opened or read (missing file, unknown format, broker down…)."""


@dataclass(frozen=True)
class Chunk:
    """A micro-batch of raw records.

    ``kind='lines'``: ``payload`` is a list of JSON lines (bytes); ``kind='frame'``: an Arrow
    record batch (Parquet, CSV) or a pandas DataFrame (CSV rows parsed a batch at a time);
    ``stream`` is ``'predictions'``, ``'labels'`` or ``'features'``; ``origin`` names the
    file or topic; ``position`` is an opaque resume position (file offset, Kafka offsets)
    that a checkpoint may store; ``partition`` names the source partition all its records
    come from (``"topic:N"``; ``""``: a source with one partition), whose event time the
    watermark follows (:mod:`monitor.core.windows`); ``decoded``: the payload already
    decoded by a background thread (:class:`monitor.ingest.ahead.Decoded`), or None;
    ``place``: where ``payload``'s first item is in ``origin``, ``("line", n)`` (1-based line
    number, each item one line: JSONL, CSV) or ``("row", i)`` (0-based row, Parquet), None
    when not known — the dead letters of its rejects say their line or row.
    """

    kind: Literal["lines", "frame"]
    payload: Any
    stream: Literal["predictions", "labels", "features"] = "predictions"
    origin: str = ""
    position: Any = None
    partition: str = ""
    decoded: Any = field(default=None, compare=False, repr=False)
    place: tuple[str, int] | None = None
