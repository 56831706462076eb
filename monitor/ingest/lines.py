"""Lines of a byte stream in bounded memory: every line at most ``limit`` bytes.

A longer line is never held whole: its first :data:`HEAD_BYTES` are kept for the dead letter
(reason ``too_large``), the rest is skipped in pieces up to the next newline. Blank lines are
returned as ``empty_line`` rejects (counted, never dropped silently).

>>> import io
>>> r = LineReader(io.BytesIO(b'{"a": 1}\\n\\n' + b"x" * 100 + b'\\n{"b"'), limit=64)
>>> [x if isinstance(x, bytes) else x.reason for x in iter(lambda: r.next(final=True), None)]
[b'{"a": 1}\\n', 'empty_line', 'too_large', b'{"b"']
>>> r.offset
115
"""

from __future__ import annotations

import os
import select
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO, overload

import numpy as np

from monitor.ingest.decode import Reject

HEAD_BYTES = 4096  # what a dead letter keeps of an oversized record
SKIP_BYTES = 1 << 16  # an oversized line is skipped in pieces of this size
CAP_BYTES = 64 << 20  # a block of lines longer than this is read line by line
READ_BYTES = 1 << 20
_SPACE = np.array(list(b" \t\n\x0b\x0c\r"), np.uint8)  # bytes.isspace()


class LineReader:
    """Reads lines of ``fh`` from its current position; ``offset`` counts the bytes consumed
    (resume positions); ``skipping`` is true inside an oversized line whose newline has not
    come yet (follow mode: it is skipped on as the file grows)."""

    def __init__(self, fh: BinaryIO, limit: int, *, offset: int = 0, skipping: bool = False):
        self.fh = fh
        self.limit = limit
        self.offset = offset
        self.skipping = skipping

    def next(self, *, final: bool) -> bytes | Reject | None:
        """The next line (with its newline), a :class:`Reject`, or None when no complete line
        is there. ``final``: the stream is complete, a last line without newline counts;
        otherwise (a file still growing) such a line is left unread (the file must be
        seekable)."""
        if self.skipping and not self._skip(final):
            return None
        line = self.fh.readline(self.limit + 1)
        if not line:
            return None
        if line[-1:] == b"\n":
            self.offset += len(line)
            return line if not line.isspace() else Reject("empty_line", "", "blank line")
        if len(line) <= self.limit:  # the last line, without newline
            if final:
                self.offset += len(line)
                return line if not line.isspace() else Reject("empty_line", "", "blank line")
            self.fh.seek(-len(line), 1)
            return None
        self.offset += len(line)
        head = line[:HEAD_BYTES].decode("utf-8", "replace")
        self.skipping = True
        self._skip(final)
        return Reject("too_large", head, f"record longer than max_record_bytes ({self.limit}); "
                                         f"its first {HEAD_BYTES} bytes are kept")

    def _skip(self, final: bool) -> bool:
        """Skip to just after the next newline; False when the stream ended first."""
        while True:
            piece = self.fh.readline(SKIP_BYTES)
            self.offset += len(piece)
            if piece[-1:] == b"\n":
                self.skipping = False
                return True
            if not piece:
                self.skipping = not final
                return final


class PipeReader:
    """``readline``/``seek`` over a pipe (stdin) that never block: bytes come in with
    :meth:`fill`, which waits at most ``timeout`` (so the caller can flush what it has and
    see a stop request). Holds at most what :class:`LineReader` has not consumed: its limit
    plus one read."""

    def __init__(self, fd: int, read_bytes: int = 1 << 16):
        self.fd = fd
        self.read_bytes = read_bytes
        self.eof = False
        self._buf = bytearray()
        self._pos = 0

    def fill(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for more input; False when none came (or at the end)."""
        if self.eof or not select.select([self.fd], [], [], timeout)[0]:
            return False
        data = os.read(self.fd, self.read_bytes)
        if not data:
            self.eof = True
            return False
        del self._buf[:self._pos]
        self._pos = 0
        self._buf += data
        return True

    def readline(self, size: int) -> bytes:
        end = self._buf.find(b"\n", self._pos, self._pos + size)
        stop = end + 1 if end >= 0 else min(len(self._buf), self._pos + size)
        line = bytes(self._buf[self._pos:stop])
        self._pos = stop
        return line

    def seek(self, offset: int, whence: int) -> None:
        """Only ``seek(-n, 1)``: give back the last ``n`` bytes read."""
        self._pos += offset


class Pushback:
    """A binary stream that bytes read can be given back to (``unread``), for the row-by-row
    path to read them again; ``readline``/``read`` as :class:`io.BufferedReader`'s. The bytes
    given back are read from a position, never sliced off the front: reading them costs what
    is returned, not what is left (an oversized line skipped in pieces stays linear)."""

    def __init__(self, fh: BinaryIO):
        self.fh = fh
        self._buf = b""
        self._pos = 0  # the next byte of _buf to read

    def unread(self, data: bytes) -> None:
        self._buf = data + self._buf[self._pos:] if self._pos < len(self._buf) else data
        self._pos = 0

    def _take(self, end: int) -> bytes:
        out = self._buf[self._pos:end]
        self._pos = end
        if self._pos >= len(self._buf):
            self._buf, self._pos = b"", 0
        return out

    def read(self, n: int = -1) -> bytes:
        if self._pos >= len(self._buf):
            return self.fh.read(n)
        if n < 0:
            return self._take(len(self._buf)) + self.fh.read()
        return self._take(min(len(self._buf), self._pos + n))

    def readline(self, size: int = -1) -> bytes:
        if self._pos >= len(self._buf):
            return self.fh.readline(size)
        stop = len(self._buf) if size < 0 else min(len(self._buf), self._pos + size)
        cut = self._buf.find(b"\n", self._pos, stop)
        if cut >= 0:
            return self._take(cut + 1)
        if 0 <= size <= len(self._buf) - self._pos:
            return self._take(self._pos + size)
        out = self._take(len(self._buf))
        return out + self.fh.readline(size - len(out) if size >= 0 else -1)


def read_lines(src: Pushback, n: int) -> tuple[bytes, bool]:
    """The next ``n`` lines (fewer at the end of the stream) and whether they are whole
    (False: more than :data:`CAP_BYTES` before the ``n``-th newline; the bytes read are
    returned anyway)."""
    pieces: list[bytes] = []
    size = lines = 0
    while lines < n:
        piece = src.read(READ_BYTES)
        if not piece:
            return b"".join(pieces), True
        pieces.append(piece)
        size += len(piece)
        lines += _newlines(piece)
        if size > CAP_BYTES and lines < n:
            return b"".join(pieces), False
    last = pieces[-1]  # the n-th newline is in it
    before = lines - _newlines(last)
    cut = int(np.flatnonzero(np.frombuffer(last, np.uint8) == 10)[n - before - 1]) + 1
    src.unread(last[cut:])
    pieces[-1] = last[:cut]
    return b"".join(pieces), True


def _newlines(data: bytes) -> int:
    """``data.count(b"\\n")``, vectorised (bytes.count goes byte by byte)."""
    return int(np.count_nonzero(np.frombuffer(data, np.uint8) == 10))


def plain_lines(block: bytes, limit: int) -> Lines | None:
    """The lines of ``block`` if :class:`LineReader` would return each of them as it is (a
    line each, split at ``\\n``: none longer than ``limit``, none blank, no ``\\r`` but
    before a ``\\n``), else None."""
    if b"\r" in block and block.count(b"\r") != block.count(b"\r\n"):
        return None
    buf = np.frombuffer(block, np.uint8)
    lines = Lines(block, np.flatnonzero(buf == 10))
    if lines.longest > limit:
        return None
    starts = lines.starts()
    for i in starts[np.isin(buf[starts], _SPACE)]:  # lines that begin with a space: rare
        end = block.find(b"\n", i)
        if block[i:end + 1 if end >= 0 else len(block)].isspace():
            return None  # a blank line: empty_line
    return lines


class Lines(Sequence[bytes]):
    """The lines of one block of bytes, each with its newline (but perhaps the last), that
    :func:`plain_lines` passed: split only when someone asks for lines. A decoder that reads
    whole blocks takes ``block`` as it is (no split, no join); ``ends``: the offsets of its
    newlines.

    >>> x = Lines(b'{"a": 1}\\n{"b": 2}')
    >>> len(x), x[1], x == [b'{"a": 1}\\n', b'{"b": 2}'], x.longest
    (2, b'{"b": 2}', True, 9)
    """

    __slots__ = ("_lines", "block", "ends")

    def __init__(self, block: bytes, ends: np.ndarray | None = None):
        self.block = block
        self.ends = np.flatnonzero(np.frombuffer(block, np.uint8) == 10) if ends is None else ends
        self._lines: list[bytes] | None = None

    def lines(self) -> list[bytes]:
        if self._lines is None:
            self._lines = self.block.splitlines(keepends=True)
        return self._lines

    def __len__(self) -> int:
        return len(self.ends) + (self.block[-1:] not in (b"\n", b""))

    @overload
    def __getitem__(self, i: int) -> bytes: ...
    @overload
    def __getitem__(self, i: slice) -> list[bytes]: ...
    def __getitem__(self, i: Any) -> Any:
        return self.lines()[i]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.lines())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # as a list's

    def __repr__(self) -> str:
        return f"Lines({len(self)} lines, {len(self.block)} bytes)"

    @property
    def longest(self) -> int:
        """The length of the longest line, newline included."""
        last = [len(self.block) - 1] if self.block[-1:] != b"\n" else []
        return int(np.diff(np.concatenate(([-1], self.ends, last))).max(initial=0))

    def starts(self) -> np.ndarray:
        """The offset of each line's first byte."""
        starts = np.concatenate(([0], self.ends + 1))
        return starts[starts < len(self.block)]
