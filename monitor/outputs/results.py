"""Results history: every closed window's per-slice results as JSON lines, and the alerts
that fired or resolved with them.

Lines have a ``type``: ``result`` (one slice of one window) or ``alert`` (a transition, see
:meth:`alerts.model.AlertEvent.to_dict`). Results are keyed by ``(model, version, slice,
window_start)``; after a crash and replay a window may be written again with identical
values, so readers keep the last line per key (:func:`read_results` does).
"""

from __future__ import annotations

import math
import os
import threading

import orjson

from alerts.model import AlertEvent
from monitor.core.evaluate import SliceResult
from monitor.core.pipeline import ClosedWindow


def result_record(r: SliceResult) -> dict:
    return {"type": "result", "model": r.model, "version": r.version, "slice_name": r.slice_name,
            "slice": r.slice, "critical": r.critical, "window_start": r.window_start,
            "window_end": r.window_end, "count": r.count, "reported": r.reported,
            "metrics": {k: (None if isinstance(v, float) and math.isnan(v) else v)
                        for k, v in r.metrics.items()},
            **({"extra": dict(r.extra)} if r.extra else {})}


class ResultsWriter:
    """Listener appending each closed window's results to ``path`` (flushed per window)."""

    def __init__(self, path: str):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._fh = open(path, "ab")  # noqa: SIM115 - kept open for the daemon's life
        self._lock = threading.Lock()

    def __call__(self, window: ClosedWindow, results: list[SliceResult]) -> None:
        data = b"".join(orjson.dumps(result_record(r), default=str) + b"\n" for r in results)
        with self._lock:
            self._fh.write(data)
            self._fh.flush()

    def write_alerts(self, events: list[AlertEvent]) -> None:
        """Sink of :class:`alerts.workers.Dispatcher`: one ``type: alert`` line per
        transition."""
        if not events:
            return
        data = b"".join(orjson.dumps(e.to_dict(), default=str) + b"\n" for e in events)
        with self._lock:
            self._fh.write(data)
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            self._fh.close()


def read_results(path: str) -> dict[tuple, dict]:
    """Last result line per ``(model, version, slice, window_start)``."""
    out: dict[tuple, dict] = {}
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                r = orjson.loads(line)
                if r.get("type", "result") == "result":
                    out[(r["model"], r["version"], r["slice"], r["window_start"])] = r
    return out


def read_alerts(path: str) -> list[dict]:
    """The ``type: alert`` lines, in order."""
    with open(path, "rb") as fh:
        return [r for r in map(orjson.loads, filter(bytes.strip, fh))
                if r.get("type") == "alert"]
