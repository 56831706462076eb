"""Where the rows of a decoded batch came from, for dead letters written after decoding.

A ``late`` record is found after windowing, not at the source; its dead letter still says
where the record is, as a reject's does (:meth:`monitor.ingest.source.Chunk.locate`): the
decoders keep the items they do not reject, in order, so row ``k`` of the batch is the
``k``-th item that no reject names. When that cannot be known exactly (a reject without its
index), no place is given and :attr:`RowPlaces.why` says why.

>>> from monitor.ingest.decode import Reject
>>> from monitor.ingest.source import Chunk
>>> chunk = Chunk("lines", [b"a", b"b", b"c"], origin="f.jsonl", place=("line", 5))
>>> places = RowPlaces.of_chunk(chunk, [Reject("invalid_json", "b", index=1)], 2)
>>> places.at(1)
('f.jsonl', {'line': 7})
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Place = tuple[str, dict[str, int]]  # (origin, {"line": n} | {"row": i} | {"partition", "offset"})


class RowPlaces:
    """The origin and place of each row of a decoded batch (see the module doc)."""

    def __init__(self, item: Callable[[int], Place], n_items: int, rejects: Sequence[Any],
                 n_rows: int, why: str = ""):
        """``item(i)``: where item ``i`` of the block decoded is; ``rejects``: the decoder's,
        each with its item's ``index``; ``n_rows``: the rows of the batch decoded."""
        self._item = item
        self.n_rows = n_rows
        self._n_items = n_items
        self._rejects = rejects
        self._items: np.ndarray | None = None  # worked out at the first :meth:`at`
        self.why = why

    def _rows_items(self) -> np.ndarray | None:
        """The item of each row, or None (then :attr:`why` says why)."""
        if self._items is not None or self.why:
            return self._items
        bad = [r.index for r in self._rejects]
        if None in bad:
            self.why = "a reject of its block has no known place"
            return None
        kept = (np.arange(self._n_items) if not bad else
                np.setdiff1d(np.arange(self._n_items), np.asarray(bad, dtype=np.int64)))
        if kept.size != self.n_rows:
            self.why = (f"{self.n_rows} records decoded from {self._n_items} items, "
                        f"{len(bad)} rejected")
            return None
        self._items = kept
        return kept

    @classmethod
    def of_chunk(cls, chunk: Any, rejects: Sequence[Any], n_rows: int) -> RowPlaces:
        """The rows decoded from ``chunk`` (a :class:`monitor.ingest.source.Chunk`)."""
        if chunk.place is None:
            return cls(lambda i: (chunk.origin, {}), 0, (), n_rows,
                       why=f"{chunk.origin or 'the source'} does not say where its records are")
        n = len(chunk.payload) if chunk.kind == "lines" else _rows(chunk.payload)
        return cls(lambda i: (chunk.origin, chunk.locate(i)), n, rejects, n_rows)

    @classmethod
    def unknown(cls, why: str) -> RowPlaces:
        return cls(lambda i: ("", {}), 0, (), 0, why=why)

    def at(self, row: int) -> Place | None:
        """Where row ``row`` of the batch came from; None when not known (:attr:`why`)."""
        items = self._rows_items()
        if items is None:
            return None
        origin, place = self._item(int(items[row]))
        return (origin, place) if place else None


def _rows(frame: Any) -> int:
    """Rows of a frame chunk's payload (an Arrow batch or table, a pandas frame, a CSV batch)."""
    n = getattr(frame, "num_rows", None)
    return int(n) if n is not None else len(frame)
