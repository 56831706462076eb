"""Dead-letter output: every rejected or late record, as one JSON line with its reason."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import orjson


class DeadLetter:
    """Appends ``{"reason", "detail", "origin", "time", "record"}`` lines to ``path``.

    With ``path=None`` records are only counted by the caller (nothing is written).
    """

    def __init__(self, path: str | None):
        self.path = path
        self._lock = threading.Lock()
        self._fh = None
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self._fh = open(path, "ab")  # noqa: SIM115 - kept open for the daemon's life

    def write(self, reason: str, record: Any, *, detail: str = "", origin: str = "") -> None:
        if self._fh is None:
            return
        line = orjson.dumps({"reason": reason, "detail": detail, "origin": origin,
                             "time": time.time(), "record": record},
                            default=_fallback, option=orjson.OPT_SERIALIZE_NUMPY)
        with self._lock:
            self._fh.write(line + b"\n")

    def flush(self) -> None:
        if self._fh is not None:
            with self._lock:
                self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            with self._lock:
                self._fh.close()
                self._fh = None


def _fallback(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return repr(value)
