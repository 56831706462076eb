"""Dead-letter output: every rejected or late record, as one JSON line with its reason.

The file is bounded: when it would grow past ``max_bytes`` it is renamed to ``<path>.1``
(replacing the previous one, whose lines are counted as dropped) and a new file is started,
so at most about twice ``max_bytes`` are on disk. Lines written and dropped are exported
(:meth:`DeadLetter.collect`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
from prometheus_client.core import CounterMetricFamily

from monitor.ingest.reasons import describe

DEFAULT_MAX_BYTES = 100 << 20


class DeadLetter:
    """Appends ``{"reason", "detail", "origin", [place,] "time", "record"}`` lines to
    ``path``; an empty ``detail`` is filled with the reason's meaning
    (:mod:`monitor.ingest.reasons`).

    With ``path=None`` records are only counted by the caller (nothing is written).
    """

    def __init__(self, path: str | None, *, max_bytes: int = DEFAULT_MAX_BYTES):
        self.path = path
        self.max_bytes = max_bytes
        self.written = 0
        self.dropped = 0  # lines of rotated-out files deleted to keep the bound
        self.rotations = 0
        self._lock = threading.Lock()
        self._fh = None
        self._size = 0
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self._fh = open(path, "ab")  # noqa: SIM115 - kept open for the daemon's life
            self._size = self._fh.tell()

    def write(self, reason: str, record: Any, *, detail: str = "", origin: str = "",
              **place: int) -> None:
        """One dead letter; ``place``: where the record is in ``origin``, when known —
        ``line=`` (1-based, JSONL/CSV), ``row=`` (0-based, Parquet) or ``partition=`` and
        ``offset=`` (a Kafka message of the topic ``origin``)."""
        if self._fh is None:
            return
        letter = {"reason": reason, "detail": detail or describe(reason), "origin": origin,
                  **place}
        out = orjson.dumps({**letter, "time": time.time(), "record": record},
                           default=_fallback, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"
        with self._lock:
            if self._size and self._size + len(out) > self.max_bytes:
                self._rotate()
            self._fh.write(out)
            self._size += len(out)
            self.written += 1

    def _rotate(self) -> None:
        """``path`` → ``path.1`` (the lines of an older ``path.1`` are counted as dropped)."""
        self._fh.close()
        old = f"{self.path}.1"
        if os.path.exists(old):
            self.dropped += _count_lines(old)
        os.replace(self.path, old)
        self._fh = open(self.path, "ab")  # noqa: SIM115
        self._size = 0
        self.rotations += 1

    def collect(self, _snapshot: Any = None) -> Iterator[CounterMetricFamily]:
        """``slicewatch_dead_letter_lines_total`` and ``…_dropped_total`` (an exporter
        collector: called with the daemon's snapshot)."""
        written = CounterMetricFamily("slicewatch_dead_letter_lines",
                                      "Lines written to the dead-letter file.")
        written.add_metric([], self.written)
        dropped = CounterMetricFamily("slicewatch_dead_letter_dropped",
                                      "Dead-letter lines deleted by rotation (the file is "
                                      "bounded by source.dead_letter_max_bytes).")
        dropped.add_metric([], self.dropped)
        yield written
        yield dropped

    def flush(self) -> None:
        if self._fh is not None:
            with self._lock:
                self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            with self._lock:
                self._fh.close()
                self._fh = None


def _count_lines(path: str) -> int:
    n = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            n += chunk.count(b"\n")
    return n


def _fallback(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return repr(value)
