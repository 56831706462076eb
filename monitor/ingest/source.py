"""What every source yields: raw chunks with where they came from."""

from __future__ import annotations

from collections.abc import Sequence
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
    ``place``: where ``payload``'s items are in ``origin``, so that their dead letters say it
    (:meth:`locate`): ``("line", n)``, the first item's 1-based line, each item one line
    (JSONL, CSV); ``("line", [n0, n1, …])``, each item's first line (CSV rows read row by row,
    where a quoted field may span lines); ``("row", i)``, the first item's 0-based row
    (Parquet); ``("offset", [o0 + 1, …])``, the offset after each message (Kafka, the
    partition's number in ``partition``); None when not known.
    """

    kind: Literal["lines", "frame"]
    payload: Any
    stream: Literal["predictions", "labels", "features"] = "predictions"
    origin: str = ""
    position: Any = None
    partition: str = ""
    decoded: Any = field(default=None, compare=False, repr=False)
    place: tuple[str, int | Sequence[int]] | None = None

    def locate(self, index: int | None) -> dict[str, int]:
        """Where the payload's item ``index`` is in ``origin``: ``{"line": n}``,
        ``{"row": i}`` or ``{"partition": p, "offset": o}``; ``{}`` when not known.

        >>> Chunk("lines", [], place=("line", 10)).locate(2)
        {'line': 12}
        >>> Chunk("lines", [], origin="t", partition="t:3", place=("offset", [8, 10])).locate(1)
        {'partition': 3, 'offset': 9}
        """
        if index is None or self.place is None:
            return {}
        kind, at = self.place
        if isinstance(at, int):
            return {kind: at + index}
        if not 0 <= index < len(at):
            return {}
        if kind == "offset":
            return {"partition": int(self.partition.rpartition(":")[2]), "offset": at[index] - 1}
        return {kind: at[index]}
