"""Decode ahead: the next chunks read and decoded on a background thread while the daemon
folds the current one.

Arrow's JSON, Parquet and CSV readers release the GIL, so reading and decoding chunk k+1
overlaps the daemon's work on chunk k on a second core. The thread only reads and decodes:
it counts nothing, writes no dead letter and moves no checkpoint. Each chunk goes on, in the
source's order, with its decoded batch attached (:class:`Decoded`, ``Chunk.decoded``); the
daemon counts its rejects, folds it and the checkpoint records its position as before, so a
chunk decoded ahead and not yet taken is simply read again after a stop.

At most ``depth`` chunks wait decoded (:data:`DEPTH`); then the reader waits for the daemon:
nothing is ever dropped. ``waits["reader"]`` counts the times it waited (the daemon is the
slower side), ``waits["daemon"]`` the times the daemon found no chunk ready (reading and
decoding is); the daemon exports them (``slicewatch_decode_ahead_waits_total{side}``).

Errors keep their place in the stream: an error of the source is raised by the iterator after
the chunks before it; an error decoding a chunk is kept in its :class:`Decoded` and raised by
the daemon when it takes that chunk, where it would have raised decoding it itself. Closing
the iterator (end of input, a stop, an error on the daemon's side) stops the thread and
closes the source on it.

>>> from monitor.ingest.source import Chunk
>>> ahead = DecodeAhead([Chunk("lines", [b"1"]), Chunk("lines", [b"2"])],
...                     lambda c: Decoded(c.payload, batch=int(c.payload[0])))
>>> [c.decoded.batch for c in ahead]
[1, 2]
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from monitor.ingest.source import Chunk

# decoded chunks waiting for the daemon, at most (the reader holds one more): each costs a
# batch of memory (Parquet replay peak RSS +14 MiB at 1, +18-36 MiB at 2, 200k records)
DEPTH = 1
POLL = 0.1  # seconds between looks at the stop flag while the queue is full or empty
JOIN = 5.0  # seconds to wait for the thread at close (a follow source may be mid-poll)


@dataclass(frozen=True)
class Decoded:
    """A chunk's payload decoded: ``batch`` and ``rejects`` as the decoder returned them, or
    the ``error`` it raised. ``of`` is the payload decoded: a chunk whose payload was
    replaced since (``dataclasses.replace``) is not taken as decoded."""

    of: Any
    batch: Any = None
    rejects: list = field(default_factory=list)
    error: BaseException | None = None


class _Failed:
    """The source raised: re-raised on the daemon's side, in its place."""

    def __init__(self, error: BaseException):
        self.error = error


_END = object()


class DecodeAhead:
    """``chunks`` read and decoded (``decode(chunk)``: a :class:`Decoded`, or None to leave
    the chunk to the daemon) on a background thread, at most ``depth`` ahead; iterate once.
    ``waits``: where to count the waits of either side (see the module's docstring).
    """

    def __init__(self, chunks: Iterable[Chunk], decode: Callable[[Chunk], Decoded | None],
                 *, depth: int = DEPTH, waits: dict[str, int] | None = None):
        if depth < 1:
            raise ValueError(f"The 'depth' parameter of DecodeAhead must be at least 1. "
                             f"Got {depth!r}.")
        self.chunks = chunks
        self.decode = decode
        self.depth = depth
        self.waits: dict[str, int] = waits if waits is not None else Counter()
        self.waits.setdefault("reader", 0)
        self.waits.setdefault("daemon", 0)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __iter__(self) -> Iterator[Chunk]:
        if self._thread is not None:
            raise RuntimeError("DecodeAhead is iterated once")
        self._thread = threading.Thread(target=self._read, name="slicewatch-decode-ahead",
                                        daemon=True)
        self._thread.start()
        try:
            while True:
                item = self._take()
                if item is _END:
                    return
                if isinstance(item, _Failed):
                    raise item.error
                yield item
        finally:
            self.close()

    def close(self) -> None:
        """Stop the thread (it closes the source) and drop what it decoded ahead."""
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(JOIN)

    def _take(self) -> Any:
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            self.waits["daemon"] += 1  # only this thread writes this key
        while True:
            try:
                return self._queue.get(timeout=POLL)
            except queue.Empty:
                if self._thread is not None and not self._thread.is_alive():
                    try:  # it put its last item and ended between the two looks
                        return self._queue.get_nowait()
                    except queue.Empty:
                        raise RuntimeError("the decode-ahead thread ended without "
                                           "the end of its input") from None

    def _read(self) -> None:
        chunks = iter(self.chunks)
        try:
            for chunk in chunks:
                decoded = self.decode(chunk)
                item = chunk if decoded is None else dataclasses.replace(chunk, decoded=decoded)
                if not self._put(item) or self._stop.is_set():
                    return  # stopped: read no further
            self._put(_END)
        except BaseException as exc:  # the source's error: raised on the daemon's side
            self._put(_Failed(exc))
        finally:
            close = getattr(chunks, "close", None)  # a generator: its files, its bar
            if close is not None:
                with contextlib.suppress(Exception):  # stopping: the run's error matters
                    close()

    def _put(self, item: Any) -> bool:
        """Queue ``item``, waiting while the queue is full; False once stopped."""
        if self._stop.is_set():
            return False
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            self.waits["reader"] += 1  # only the reader writes this key
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=POLL)
                return True
            except queue.Full:
                continue
        return False
