"""Files and stdin: JSONL (globs), CSV, Parquet; replay (as fast as possible) or follow (tail).

Every line is read in bounded memory (:mod:`monitor.ingest.lines`): a record longer than
``max_record_bytes`` is dead-lettered as ``too_large``, blank lines as ``empty_line``; bad
CSV rows are dead letters too (:mod:`monitor.ingest.csvrows`). Those rejects travel in the
``lines`` payload as :class:`monitor.ingest.decode.Reject` items. Each chunk's ``position`` is a
:class:`FileProgress` (how far its file has been read), which a checkpoint stores so that a
restart resumes there (``resume=``); stdin cannot be resumed.

>>> import tempfile, os
>>> d = tempfile.mkdtemp(); p = os.path.join(d, "a.jsonl")
>>> _ = open(p, "w").write('{"x": 1}\\n{"x": 2}\\n')
>>> [len(c.payload) for c in FileSource([p], batch_size=1).chunks()]
[1, 1]
"""

from __future__ import annotations

import glob
import hashlib
import os
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, BinaryIO

from monitor.ingest.csvrows import CsvRows
from monitor.ingest.decode import Reject
from monitor.ingest.lines import LineReader, PipeReader, Pushback, plain_lines, read_lines
from monitor.ingest.source import Chunk, SourceError

FORMATS = ("jsonl", "csv", "parquet")
HEAD_BYTES = 4096  # a file's identity: device, inode and a hash of its first bytes


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


@dataclass(frozen=True)
class FileProgress:
    """How far one input has been read: ``offset`` bytes (decompressed for ``.gz``; rows for
    Parquet), ``skipping`` inside an oversized line; the file's identity (device, inode, hash
    of its first ``head_len`` bytes) tells on resume whether it is still the same file."""

    key: str  # "<stream>:<path>"
    offset: int
    skipping: bool = False
    dev: int = 0
    ino: int = 0
    head: str = ""
    head_len: int = 0

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_state(state: dict[str, Any]) -> FileProgress:
        return FileProgress(**state)


def identify(key: str, path: str) -> FileProgress:
    """Offset 0 of ``path``, with its identity now."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            head = fh.read(HEAD_BYTES)
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror}") from None
    return FileProgress(key, 0, False, st.st_dev, st.st_ino, hashlib.sha256(head).hexdigest(),
                        len(head))


def same_file(saved: FileProgress, path: str) -> bool:
    """Whether ``path`` is still the file ``saved`` was read from (not replaced or cut)."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            head = fh.read(saved.head_len)
    except OSError:
        return False
    return ((st.st_dev, st.st_ino) == (saved.dev, saved.ino) and len(head) == saved.head_len
            and hashlib.sha256(head).hexdigest() == saved.head
            and (path.endswith(".gz") or st.st_size >= saved.offset))


class FileSource:
    """Reads files in order and yields :class:`Chunk` s of at most ``batch_size`` records.

    With ``follow=True`` it keeps tailing the JSONL files (and picks up new files that match
    the patterns) until ``stop`` is set; a partial last line waits for its newline. Stdin and
    follow mode hand on what they have at least every ``flush_seconds``. ``resume`` maps
    :attr:`FileProgress.key` to a saved :meth:`FileProgress.to_state`: a file that is still
    the same is read on from there. Parquet and CSV come as Arrow record batches
    (``arrow=False``: as pandas frames, CSV parsed row by row: the reference path).
    """

    def __init__(self, patterns: Sequence[str], *, fmt: str = "auto", batch_size: int = 10_000,
                 follow: bool = False, stream: str = "predictions", poll_interval: float = 0.2,
                 stop: threading.Event | None = None, max_record_bytes: int = 1 << 20,
                 flush_seconds: float = 1.0, resume: dict[str, dict] | None = None,
                 arrow: bool = True):
        if batch_size < 1:
            raise SourceError(f"batch_size must be at least 1; got {batch_size}")
        self.patterns = list(patterns)
        self.fmt = fmt
        self.batch_size = batch_size
        self.follow = follow
        self.stream = stream
        self.poll_interval = poll_interval
        self.stop = stop or threading.Event()
        self.limit = max_record_bytes
        self.flush_seconds = flush_seconds
        self.arrow = arrow
        self.resume = {k: FileProgress.from_state(v) for k, v in (resume or {}).items()}
        self._tail_lines: dict[str, int] = {}  # a followed file → number of its next line
        self.paths = expand(self.patterns) if not follow else self._expand_lenient()
        if follow:
            self._refuse_gz(self.paths)

    def _expand_lenient(self) -> list[str]:
        out: list[str] = []
        for pattern in self.patterns:
            out.extend([pattern] if pattern == "-" else sorted(glob.glob(pattern)))
        if not out and not any(glob.has_magic(p) for p in self.patterns):
            missing = next(p for p in self.patterns if p != "-")
            raise SourceError(f"no file matches {missing!r} (--follow waits for files a glob "
                              "matches, not for a missing file path)")
        return out

    def _refuse_gz(self, paths: list[str]) -> None:
        for path in paths:
            if path.endswith(".gz"):
                raise SourceError(f"cannot follow the compressed file {path}: a gzip stream "
                                  "cannot be tailed; replay it without --follow")

    def chunks(self) -> Iterator[Chunk]:
        if not self.follow:
            for path in self.paths:
                yield from self._read(path)
            return
        done: set[str] = set()
        tails: dict[str, FileProgress] = {}
        while True:
            last = self.stop.is_set()  # a pass begun after stop is the last: what was
            progressed = False         # written before stop is read, nothing after
            paths = self._expand_lenient()
            self._refuse_gz(paths)
            for path in paths:
                if path in done:
                    continue
                if path == "-" or detect_format(path, self.fmt) != "jsonl":
                    yield from self._read(path)  # stdin, CSV, Parquet: read once, whole
                    done.add(path)
                    progressed = True
                    continue
                for chunk in self._tail_once(path, tails):
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
                yield from self._stdin()
            else:
                yield from self._jsonl_file(path)
        elif fmt == "csv":
            yield from self._csv_stdin() if path == "-" else self._csv_file(path)
        elif fmt == "parquet" and path == "-":
            raise SourceError("cannot read Parquet from stdin (it needs a seekable file): "
                              "give the file with -i, or send JSON lines or CSV on stdin")
        elif fmt == "parquet":
            yield from self._parquet_file(path)
        else:
            raise SourceError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")

    def _start(self, path: str) -> FileProgress:
        """Where to begin reading ``path``: the saved progress if it is the same file."""
        key = f"{self.stream}:{path}"
        saved = self.resume.get(key)
        if saved is not None and same_file(saved, path):
            return saved
        return identify(key, path)

    def _open(self, path: str) -> BinaryIO:
        try:
            return _open_gz(path) if path.endswith(".gz") else open(path, "rb")
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc.strerror}") from None

    def _lines_of(self, path: str) -> tuple[BinaryIO, LineReader, FileProgress]:
        """``path`` opened at its start position, with a line reader there."""
        at = self._start(path)
        fh = self._open(path)
        if path.endswith(".gz"):
            _discard(fh, at.offset)
        else:
            fh.seek(at.offset)
        return fh, LineReader(fh, self.limit, offset=at.offset, skipping=at.skipping), at

    def _jsonl_file(self, path: str) -> Iterator[Chunk]:
        fh, reader, at = self._lines_of(path)
        line = _first_line(lambda: self._open(path), at)
        if not path.endswith(".gz"):  # a gzip stream that breaks: read line by line
            with fh:
                yield from self._jsonl_blocks(fh, reader, path, at, line)
            return
        with fh:
            items: list[Any] = []
            try:
                while (item := reader.next(final=True)) is not None:
                    items.append(item)
                    if len(items) >= self.batch_size:
                        yield self._chunk(items, path, reader, at, line)
                        line += len(items)
                        items = []
            except (OSError, EOFError) as exc:  # e.g. a corrupt or cut gzip stream
                items.append(Reject("read_error", "", f"{path}: {exc}"))
            if items:
                yield self._chunk(items, path, reader, at, line)

    def _jsonl_blocks(self, fh: BinaryIO, reader: LineReader, path: str,
                      at: FileProgress, line: int) -> Iterator[Chunk]:
        """``batch_size`` lines at a time, split in one call when :class:`LineReader` would
        return each as it is (:func:`monitor.ingest.lines.plain_lines`), else line by line:
        the same items either way."""
        src = Pushback(fh)
        reader = LineReader(src, self.limit, offset=reader.offset,  # type: ignore[arg-type]
                            skipping=reader.skipping)
        while True:
            items: list[Any] = []
            try:
                if not reader.skipping:
                    block, whole = read_lines(src, self.batch_size)
                    if not block:
                        return
                    lines = plain_lines(block, self.limit) if whole else None
                    if lines is not None:
                        reader.offset += len(block)
                        yield self._chunk(lines, path, reader, at, line)
                        line += len(lines)
                        continue
                    src.unread(block)
                while len(items) < self.batch_size and (
                        item := reader.next(final=True)) is not None:
                    items.append(item)
            except OSError as exc:
                items.append(Reject("read_error", "", f"{path}: {exc}"))
                yield self._chunk(items, path, reader, at, line)
                return
            if not items:
                return
            yield self._chunk(items, path, reader, at, line)
            line += len(items)

    def _chunk(self, items: list, path: str, reader: LineReader, at: FileProgress,
               line: int | None = None) -> Chunk:
        """``items`` (one a line, the first at ``line`` if known) and the position after."""
        progress = FileProgress(at.key, reader.offset, reader.skipping, at.dev, at.ino,
                                at.head, at.head_len)
        return Chunk("lines", items, self.stream, path, progress,
                     place=None if line is None else ("line", line))

    def _stdin(self) -> Iterator[Chunk]:
        """Stdin, handed on at least every ``flush_seconds`` (a live pipe is not held back
        until a batch fills) and left as soon as ``stop`` is set."""
        pipe = PipeReader(sys.stdin.fileno())
        reader = LineReader(pipe, self.limit)  # type: ignore[arg-type]
        items: list[Any] = []
        line = 1
        due = time.monotonic() + self.flush_seconds
        while not self.stop.is_set():
            item = reader.next(final=pipe.eof)
            if item is not None:
                items.append(item)
            elif pipe.eof:
                break
            else:
                pipe.fill(max(0.0, min(self.poll_interval, due - time.monotonic())))
            if items and (len(items) >= self.batch_size or time.monotonic() >= due):
                yield Chunk("lines", items, self.stream, "-", None, place=("line", line))
                line += len(items)
                items = []
            if not items:
                due = time.monotonic() + self.flush_seconds
        if items:
            yield Chunk("lines", items, self.stream, "-", None, place=("line", line))

    def _csv_stdin(self) -> Iterator[Chunk]:
        """CSV on stdin (``-i -`` with ``source.format: csv``): the first line is the header;
        rows are handed on like stdin's JSON lines (a batch, or every ``flush_seconds``)."""
        lines = self._stdin()
        rows: CsvRows | None = None
        for chunk in lines:
            rejects: list[Any] = []
            for i, item in enumerate(chunk.payload):
                if rows is None:
                    if not isinstance(item, bytes):
                        raise SourceError("cannot read -: no CSV header line on stdin")
                    rows = CsvRows(item, self.limit)
                    continue
                at = chunk.locate(i).get("line")
                bad = replace(item, line=at) if isinstance(item, Reject) else rows.add(item, at)
                if bad is not None:
                    rejects.append(bad)
            if rows is not None:
                yield from self._stdin_csv_chunks(rows, rejects)
        if rows is not None:
            yield from self._stdin_csv_chunks(rows, [r for r in [rows.finish()] if r])

    def _stdin_csv_chunks(self, rows: CsvRows, rejects: list[Any]) -> Iterator[Chunk]:
        frame, more, lines = rows.take()
        if rejects or more:
            yield Chunk("lines", rejects + more, self.stream, "-", None)
        if frame is not None:
            yield Chunk("frame", frame, self.stream, "-", None, place=_lines_place(lines))

    def _csv_file(self, path: str) -> Iterator[Chunk]:
        """A CSV file, a batch of ``batch_size`` lines at a time: read by Arrow when the
        batch is regular (:mod:`monitor.ingest.csvblocks`), else row by row (the same
        batch: the rows, their rejects and pandas' types are the same either way)."""
        from monitor.ingest.csvblocks import Pushback, read_lines, regular  # pyarrow.csv

        fh, reader, at = self._lines_of(path)
        with fh:
            fh.seek(0)
            header = LineReader(fh, self.limit).next(final=True)
            if not isinstance(header, bytes):
                raise SourceError(f"cannot read {path}: no CSV header line")
            rows = CsvRows(header, self.limit)
            line = _first_line(lambda: self._open(path), at) + (reader.offset == 0)
            if reader.offset == 0:
                reader.offset = len(header)
            else:
                fh.seek(reader.offset)
            src = Pushback(fh)
            fast = self.arrow and regular(header, self.limit)
            offset = reader.offset
            while True:
                block, whole = read_lines(src, self.batch_size)
                if not block:
                    return
                table = self._csv_block(header, block, rows.names) if fast and whole else None
                if table is not None:
                    offset += len(block)
                    progress = FileProgress(at.key, offset, False, at.dev, at.ino, at.head,
                                            at.head_len)
                    yield Chunk("frame", table, self.stream, path, progress,
                                place=("line", line))
                    line += _line_count(block)
                    continue
                src.unread(block)
                reader = LineReader(src, self.limit, offset=offset)  # type: ignore[arg-type]
                line = yield from self._csv_rows(rows, reader, path, at, line)
                offset = reader.offset

    def _csv_block(self, header: bytes, block: bytes, names: list[str]) -> Any:
        """The block as a :class:`monitor.ingest.csvblocks.CsvBatch`, or None when it must be
        read row by row."""
        from monitor.ingest.csvblocks import CsvBatch, Irregular, parse_block, regular

        if not regular(block, self.limit):
            return None
        try:
            return CsvBatch(header, block, parse_block(block, names), self.limit)
        except Irregular:
            return None

    def _csv_rows(self, rows: CsvRows, reader: LineReader, path: str, at: FileProgress,
                  line: int) -> Generator[Chunk, None, int]:
        """Row by row: one batch (more while a quoted field is still open), or to the end.
        A bad row's reject says its ``line`` (that of the next item read, at first); returns
        the number of the next line."""
        rejects: list[Any] = []
        while True:
            item = reader.next(final=True)
            if item is None:
                rejects.extend(r for r in [rows.finish()] if r is not None)
            bad = item if isinstance(item, Reject) else (
                rows.add(item, line) if item is not None else None)
            if bad is not None:
                rejects.append(replace(bad, line=line) if bad.line is None and item is not None
                               else bad)
            line += item is not None
            if item is None or len(rows.rows) + len(rejects) >= self.batch_size:
                yield from self._csv_chunks(rows, rejects, path, reader, at)
                rejects = []
                if item is None or not rows.pending:
                    return line

    def _csv_chunks(self, rows: CsvRows, rejects: list, path: str, reader: LineReader,
                    at: FileProgress) -> Iterator[Chunk]:
        """The rejects (no position: no checkpoint between them and their rows), then the
        rows, with the position after both."""
        frame, more, lines = rows.take()
        rejects = rejects + more
        if frame is None:
            if rejects:
                yield self._chunk(rejects, path, reader, at)
            return
        if rejects:
            yield Chunk("lines", rejects, self.stream, path, None)
        progress = self._chunk([], path, reader, at).position
        yield Chunk("frame", frame, self.stream, path, progress, place=_lines_place(lines))

    def _parquet_file(self, path: str) -> Iterator[Chunk]:
        import pyarrow.parquet as pq

        at = self._start(path)
        try:
            # pre-buffered, the file piles up; buffered (64 KiB), a column chunk is read page
            # by page rather than whole (1M-row replay: peak RSS −8 MiB, same CPU)
            pf = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 16)
            text = _text_columns(pf) if self.arrow and (
                self.stream == "predictions") else []
            if text:  # text as its dictionary codes: the decoder codes per value, not cell
                pf = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 16,
                                    metadata=pf.metadata, read_dictionary=text)
            row = 0
            # one thread: Arrow's decoding threads cost more CPU than they save on a busy
            # host, and each keeps its own allocator arenas (tens of MiB of resident memory)
            for rb in pf.iter_batches(batch_size=self.batch_size, use_threads=False):
                skip = min(len(rb), max(0, at.offset - row))
                row += len(rb)
                if skip < len(rb):
                    progress = FileProgress(at.key, row, False, at.dev, at.ino, at.head,
                                            at.head_len)
                    frame = rb.slice(skip) if self.arrow else rb.slice(skip).to_pandas()
                    yield Chunk("frame", frame, self.stream, path, progress,
                                place=("row", row - len(rb) + skip))
        except (OSError, ValueError) as exc:  # pyarrow's errors are OSError / ValueError
            raise SourceError(f"cannot read {path}: {exc}") from None

    def _tail_once(self, path: str, tails: dict[str, FileProgress]) -> Iterator[Chunk]:
        """Read complete lines appended to ``path`` since the last call (from the saved
        progress, the first time); a file replaced or cut is read again from its start."""
        at = tails.get(path)
        if at is None or not _still(at, path):
            try:
                at = self._start(path) if at is None else identify(at.key, path)
                self._tail_lines[path] = _first_line(lambda: open(path, "rb"), at)  # noqa: SIM115
            except (SourceError, OSError):
                return  # gone meanwhile
        try:
            fh = open(path, "rb")  # noqa: SIM115
        except OSError:
            return
        with fh:
            fh.seek(at.offset)
            reader = LineReader(fh, self.limit, offset=at.offset, skipping=at.skipping)
            while True:
                items = []
                while len(items) < self.batch_size and (
                        item := reader.next(final=False)) is not None:
                    items.append(item)
                at = FileProgress(at.key, reader.offset, reader.skipping, at.dev, at.ino,
                                  at.head, at.head_len)
                tails[path] = at
                if not items:
                    return
                line = self._tail_lines[path]
                self._tail_lines[path] = line + len(items)
                yield Chunk("lines", items, self.stream, path, at, place=("line", line))


def _lines_place(lines: list[int | None]) -> tuple[str, list[int]] | None:
    """The place of a frame of CSV rows read row by row: each row's first line (None when
    one is not known)."""
    return ("line", lines) if lines and None not in lines else None  # type: ignore[return-value]


def _first_line(fh_of: Callable[[], BinaryIO], at: FileProgress) -> int:
    """The 1-based number of the first line read from ``at``: the newlines before its offset
    are counted (read once, on a resume only); inside a too-long line, the next one."""
    if not at.offset:
        return 1
    n, left = 0, at.offset
    with fh_of() as fh:
        while left and (piece := fh.read(min(left, 1 << 20))):
            n += piece.count(b"\n")
            left -= len(piece)
    return n + 1 + at.skipping


def _line_count(block: bytes) -> int:
    return block.count(b"\n") + (not block.endswith(b"\n"))


def _still(at: FileProgress, path: str) -> bool:
    """Cheap check while tailing: same inode, not shorter than what was read."""
    try:
        st = os.stat(path)
    except OSError:
        return True  # gone for now: the next poll sees
    return (st.st_dev, st.st_ino) == (at.dev, at.ino) and st.st_size >= at.offset


def _discard(fh: BinaryIO, n: int) -> None:
    while n > 0:
        got = len(fh.read(min(n, 1 << 20)))
        if not got:
            return
        n -= got


def _open_gz(path: str) -> BinaryIO:
    import gzip
    return gzip.open(path, "rb")  # type: ignore[return-value]


def _text_columns(pf: Any) -> list[str]:
    """The top-level text columns of Parquet file ``pf`` worth reading as dictionaries: those
    whose first row group stores a small dictionary (categories, not ids: a column that
    outgrew its dictionary would be hashed cell by cell to make one)."""
    import pyarrow as pa

    if not pf.metadata.num_row_groups:
        return []
    group = pf.metadata.row_group(0)
    chunks = {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}
    out = []
    for field in pf.schema_arrow:
        chunk = chunks.get(field.name)
        if chunk is None or not chunk.has_dictionary_page or not (
                pa.types.is_string(field.type) or pa.types.is_large_string(field.type)):
            continue
        dictionary_bytes = chunk.data_page_offset - (chunk.dictionary_page_offset or 0)
        if dictionary_bytes > 0 and dictionary_bytes * 8 <= chunk.total_compressed_size:
            out.append(field.name)
    return out
