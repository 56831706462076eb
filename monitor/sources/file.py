"""Files and stdin: JSONL (globs), CSV, Parquet; replay (as fast as possible) or follow (tail).

>>> import tempfile, os
>>> d = tempfile.mkdtemp(); p = os.path.join(d, "a.jsonl")
>>> _ = open(p, "w").write('{"x": 1}\\n{"x": 2}\\n')
>>> [len(c.payload) for c in FileSource([p], batch_size=1).chunks()]
[1, 1]
"""

from __future__ import annotations

import glob
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import BinaryIO

import pandas as pd

from monitor.sources.base import Chunk, SourceError

FORMATS = ("jsonl", "csv", "parquet")
TAIL_READ_BYTES = 16 << 20  # follow mode reads at most this much per poll


def detect_format(path: str, declared: str = "auto") -> str:
    """The format of ``path``: the declared one, else from its extension (.jsonl/.json/.ndjson,
    .csv, .parquet/.pq); stdin (``-``) is JSONL unless declared."""
    if declared != "auto":
        return declared
    if path == "-":
        return "jsonl"
    lower = path.lower().removesuffix(".gz")
    if lower.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith((".parquet", ".pq")):
        return "parquet"
    raise SourceError(f"cannot tell the format of {path!r} from its extension; "
                      "set source.format to jsonl, csv or parquet")


def expand(patterns: Sequence[str]) -> list[str]:
    """Expand globs in order; a pattern that matches nothing is an error (stdin ``-`` kept)."""
    out: list[str] = []
    for pattern in patterns:
        if pattern == "-":
            out.append(pattern)
            continue
        matches = sorted(glob.glob(pattern))
        if not matches:
            raise SourceError(f"no file matches {pattern!r}")
        out.extend(m for m in matches if m not in out)
    return out


class FileSource:
    """Reads files in order and yields :class:`Chunk` s of at most ``batch_size`` records.

    With ``follow=True`` it keeps tailing the last JSONL file (and picks up new files that
    match the patterns) until ``stop`` is set; a partial last line waits for its newline.
    """

    def __init__(self, patterns: Sequence[str], *, fmt: str = "auto", batch_size: int = 10_000,
                 follow: bool = False, stream: str = "predictions", poll_interval: float = 0.2,
                 stop: threading.Event | None = None):
        if batch_size < 1:
            raise SourceError(f"batch_size must be at least 1; got {batch_size}")
        self.patterns = list(patterns)
        self.fmt = fmt
        self.batch_size = batch_size
        self.follow = follow
        self.stream = stream
        self.poll_interval = poll_interval
        self.stop = stop or threading.Event()
        self.paths = expand(self.patterns) if not follow else self._expand_lenient()

    def _expand_lenient(self) -> list[str]:
        out: list[str] = []
        for pattern in self.patterns:
            out.extend([pattern] if pattern == "-" else sorted(glob.glob(pattern)))
        if not out and not any(glob.has_magic(p) for p in self.patterns):
            raise SourceError(f"no file matches {self.patterns!r}")
        return out

    def chunks(self) -> Iterator[Chunk]:
        if not self.follow:
            for path in self.paths:
                yield from self._read(path)
            return
        done: set[str] = set()
        offsets: dict[str, int] = {}
        while True:
            last = self.stop.is_set()  # a pass begun after stop is the last: what was
            progressed = False         # written before stop is read, nothing after
            for path in self._expand_lenient():
                if path in done:
                    continue
                if path == "-" or detect_format(path, self.fmt) != "jsonl":
                    yield from self._read(path)  # stdin, CSV, Parquet: read once, whole
                    done.add(path)
                    progressed = True
                    continue
                for chunk in self._tail_once(path, offsets):
                    progressed = True
                    yield chunk
            if last:
                return
            if not progressed:
                self.stop.wait(self.poll_interval)

    # ---- readers -------------------------------------------------------------------------
    def _read(self, path: str) -> Iterator[Chunk]:
        fmt = detect_format(path, self.fmt)
        if fmt == "jsonl":
            if path == "-":
                yield from self._lines(sys.stdin.buffer, "-")
            else:
                yield from self._jsonl_file(path)
        elif fmt == "csv":
            try:
                reader = pd.read_csv(path, chunksize=self.batch_size)
            except (OSError, pd.errors.EmptyDataError) as exc:
                raise SourceError(f"cannot read {path}: {exc}") from None
            for i, frame in enumerate(reader):
                yield Chunk("frame", frame, self.stream, path, i)
        elif fmt == "parquet":
            import pyarrow.parquet as pq
            try:
                pf = pq.ParquetFile(path)
            except (OSError, ValueError) as exc:
                raise SourceError(f"cannot read {path}: {exc}") from None
            for i, rb in enumerate(pf.iter_batches(batch_size=self.batch_size)):
                yield Chunk("frame", rb.to_pandas(), self.stream, path, i)
        else:
            raise SourceError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")

    def _jsonl_file(self, path: str) -> Iterator[Chunk]:
        opener = _open_gz if path.endswith(".gz") else open
        try:
            fh = opener(path, "rb")
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc.strerror}") from None
        with fh:
            yield from self._lines(fh, path)

    def _lines(self, fh: BinaryIO, origin: str) -> Iterator[Chunk]:
        buf: list[bytes] = []
        offset = 0
        for line in fh:
            offset += len(line)
            buf.append(line)
            if len(buf) >= self.batch_size:
                yield Chunk("lines", buf, self.stream, origin, offset)
                buf = []
        if buf:
            yield Chunk("lines", buf, self.stream, origin, offset)

    def _tail_once(self, path: str, offsets: dict[str, int]) -> Iterator[Chunk]:
        """Read complete lines appended to ``path`` since the last call."""
        try:
            size = os.path.getsize(path)
        except OSError:
            return
        start = offsets.get(path, 0)
        if size < start:  # truncated or rotated in place: start over
            start = 0
        if size == start:
            return
        with open(path, "rb") as fh:
            fh.seek(start)
            data = fh.read(TAIL_READ_BYTES)
        end = data.rfind(b"\n")
        if end < 0:
            return
        complete = data[: end + 1]
        offsets[path] = start + len(complete)
        lines = complete.splitlines(keepends=True)
        for i in range(0, len(lines), self.batch_size):
            yield Chunk("lines", lines[i: i + self.batch_size], self.stream, path, offsets[path])


def _open_gz(path: str, mode: str):
    import gzip
    return gzip.open(path, mode)


