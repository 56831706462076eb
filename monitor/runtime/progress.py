"""Progress bars for long work (``run`` over files, ``baseline build``, ``report``).

A bar is drawn on stderr only when stderr is a terminal and the command is not quiet; it
shows the share done, records per second and the time left. The amount of work comes from
the files themselves: their sizes (bytes read so far from each chunk's position) and, for
Parquet, the row count in the file's metadata.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TextIO

from monitor.ingest.source import Chunk

GZIP_RATIO = 5.0  # a gzipped file's bytes are counted as this many uncompressed bytes


def enabled(quiet: bool = False, stream: TextIO | None = None) -> bool:
    """Bars only for a person watching: stderr is a terminal and not ``-q``."""
    stream = stream if stream is not None else sys.stderr
    return not quiet and hasattr(stream, "isatty") and stream.isatty()


def _parquet_rows(path: str) -> int:
    import pyarrow.parquet as pq

    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except (OSError, ValueError):
        return 0


class InputSize:
    """The work of reading ``paths``: bytes for text files, rows turned into bytes (by the
    file's bytes per row) for Parquet; stdin has no size (``total`` is None).

    >>> InputSize(["-"]).total is None
    True
    """

    def __init__(self, paths: Sequence[str]):
        self.sizes: dict[str, float] = {}
        self.per_row: dict[str, float] = {}  # Parquet: bytes per row
        unknown = False
        for path in paths:
            if path == "-" or not os.path.isfile(path):
                unknown = True
                continue
            size = float(os.path.getsize(path))
            if path.lower().endswith((".parquet", ".pq")):
                self.per_row[path] = size / max(_parquet_rows(path), 1)
            elif path.endswith(".gz"):
                size *= GZIP_RATIO
            self.sizes[path] = size
        self.total = None if unknown or not self.sizes else sum(self.sizes.values())

    def done(self, path: str, position: Any) -> float | None:
        """Bytes of ``path`` read up to ``position`` (a chunk's resume position)."""
        offset = getattr(position, "offset", None)
        if offset is None or path not in self.sizes:
            return None
        done = offset * self.per_row[path] if path in self.per_row else float(offset)
        return min(done, self.sizes[path])


class Bar:
    """A rich progress bar (records/s, ETA), or nothing when not ``enabled``."""

    def __init__(self, description: str, total: float | None, *, show: bool,
                 stream: TextIO | None = None):
        self._progress = None
        if not show:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[records]:,} records · {task.fields[rate]} rec/s"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=Console(file=stream if stream is not None else sys.stderr),
            transient=False)
        self._task = self._progress.add_task(description, total=total, records=0, rate="–")
        self.records = 0
        self._progress.start()

    def update(self, completed: float | None = None, records: int = 0,
               advance: float = 0.0) -> None:
        if self._progress is None:
            return
        self.records += records
        task = self._progress.tasks[0]
        elapsed = task.elapsed or 0.0
        rate = f"{self.records / elapsed:,.0f}" if elapsed > 0.2 else "–"
        kwargs: dict[str, Any] = {"records": self.records, "rate": rate}
        if completed is not None:
            kwargs["completed"] = completed
        elif advance:
            kwargs["advance"] = advance
        self._progress.update(self._task, **kwargs)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def tracked(chunks: Iterable[Chunk], paths: Sequence[str], bar: Bar) -> Iterator[Chunk]:
    """``chunks`` passed through, moving ``bar`` by each chunk's file position."""
    size = InputSize(paths)
    done: dict[str, float] = {}
    try:
        for chunk in chunks:
            at = size.done(chunk.origin, chunk.position)
            if at is not None:
                done[chunk.origin] = at
            records = len(chunk.payload) if chunk.stream == "predictions" else 0
            bar.update(sum(done.values()) if size.total else None, records=records)
            yield chunk
    finally:
        bar.close()


def input_bar(description: str, paths: Sequence[str], *, quiet: bool = False,
              stream: TextIO | None = None) -> Bar:
    """A bar sized by ``paths`` (see :class:`InputSize`)."""
    return Bar(description, InputSize(paths).total, show=enabled(quiet, stream), stream=stream)
