"""CSV rows, checked one by one before pandas parses a batch of them.

A row that is not UTF-8 (``bad_encoding``) or has another number of fields than the header
(``bad_csv_row``) becomes a reject; the rows that pass are parsed together by
``pandas.read_csv`` (its type inference, per batch, as before). A quoted field may span lines:
a line with an odd number of ``"`` continues on the next one.

>>> rows = CsvRows(b"a,b\\n")
>>> rows.add(b"1,2\\n", 2), rows.add(b"1,2,3\\n", 3).line, rows.add(b'3,"x\\n', 4)
(None, 3, None)
>>> rows.add(b'y"\\n', 5)
>>> frame, rejects, lines = rows.take()
>>> frame.to_dict(orient="records"), rejects, lines
([{'a': 1, 'b': '2'}, {'a': 3, 'b': 'x\\ny'}], [], [2, 4])
"""

from __future__ import annotations

import csv
import io
from dataclasses import replace

from monitor.core.lazy import lazy_module
from monitor.ingest.decode import Reject
from monitor.ingest.source import SourceError

pd = lazy_module("pandas")  # at the first batch, not at start (test_light_start.py)

# (pandas.errors.ParserError is a ValueError: caught without importing pandas at start)
_PARSE_ERRORS = (ValueError, UnicodeDecodeError, csv.Error)


class CsvRows:
    """Collects the good rows of one CSV file (after its ``header`` line) into batches."""

    def __init__(self, header: bytes, limit: int = 1 << 20):
        try:
            self.names = _fields(header.decode("utf-8"))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise SourceError(f"cannot read the CSV header: {exc}") from None
        self.header = header if header.endswith(b"\n") else header + b"\n"
        self.limit = limit
        self.rows: list[bytes] = []
        self.lines: list[int | None] = []  # the first line of each row (None: not known)
        self._open_at: int | None = None  # the first line of the row still open
        self._open: list[bytes] = []  # lines of a row whose quoted field is still open
        self._open_len = 0  # their total length
        self._open_quotes = 0  # and their quote count (parity: a field still open)

    def add(self, line: bytes, at: int | None = None) -> Reject | None:
        """Take one line (``at``: its 1-based line number in the file, when known); a reject
        if the row it completes is bad."""
        if not self._open:
            self._open_at = at
        bad = self._add(line)
        return bad if bad is None or self._open_at is None else replace(bad, line=self._open_at)

    def _add(self, line: bytes) -> Reject | None:
        over = self._open_len > self.limit  # only the head of the row is kept (see below)
        if not over:
            self._open.append(line)  # a running length and quote count: linear in the row
        self._open_len += len(line)
        self._open_quotes += line.count(b'"')
        if self._open_quotes % 2:
            if self._open_len > self.limit and not over:
                # a quoted field over the limit: its head kept for the dead letter, its other
                # lines dropped until the field closes, so the row is one too_large reject
                # (not a bad_csv_row for every line of the rest of the field)
                self._open = [b"".join(self._open)[:4096]]
            return None  # a quoted field goes on on the next line
        if over:
            head = self._open[0]
            self._open, self._open_len, self._open_quotes = [], 0, 0
            return Reject("too_large", head.decode("utf-8", "replace"),
                          f"CSV row longer than max_record_bytes ({self.limit})")
        row = b"".join(self._open)
        self._open, self._open_len, self._open_quotes = [], 0, 0
        if len(row) > self.limit:
            return Reject("too_large", row[:4096].decode("utf-8", "replace"),
                          f"CSV row longer than max_record_bytes ({self.limit})")
        try:
            text = row.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Reject("bad_encoding", row.decode("utf-8", "replace").rstrip("\r\n"),
                          f"not UTF-8: {exc.reason} at byte {exc.start}")
        try:
            n = len(_fields(text))
        except csv.Error as exc:
            return Reject("bad_csv_row", text.rstrip("\r\n"), str(exc))
        if n != len(self.names):
            return Reject("bad_csv_row", text.rstrip("\r\n"),
                          f"expected {len(self.names)} fields (the header's), got {n}")
        self.rows.append(row if row.endswith(b"\n") else row + b"\n")
        self.lines.append(self._open_at)
        return None

    @property
    def pending(self) -> bool:
        """Whether a row whose quoted field is still open waits for its next line."""
        return bool(self._open)

    def finish(self) -> Reject | None:
        """End of file: a row whose quote never closed is a reject."""
        if not self._open:
            return None
        row = b"".join(self._open)
        self._open, self._open_len, self._open_quotes = [], 0, 0
        return Reject("bad_csv_row", row[:4096].decode("utf-8", "replace"),
                      "unterminated quoted field at the end of the file", line=self._open_at)

    def take(self) -> tuple[pd.DataFrame | None, list[Reject], list[int | None]]:
        """The collected rows as one frame (None when there are none), the rows pandas still
        refuses (parsed alone; each a reject with its ``index`` among the rows taken and its
        ``line`` when known), and the first line of each of the frame's rows."""
        rows, self.rows = self.rows, []
        lines, self.lines = self.lines, []
        if len(lines) != len(rows):  # rows set by hand (a CSV batch's): one line each
            lines = [None] * len(rows)
        if not rows:
            return None, [], []
        try:
            return self._parse(rows), [], lines
        except _PARSE_ERRORS:
            pass
        frames, rejects, kept = [], [], []
        for i, row in enumerate(rows):
            try:
                frames.append(self._parse([row]))
                kept.append(lines[i])
            except _PARSE_ERRORS as exc:
                rejects.append(Reject("bad_csv_row", row.decode("utf-8", "replace"), str(exc),
                                      index=i, line=lines[i]))
        return (pd.concat(frames, ignore_index=True) if frames else None), rejects, kept

    def _parse(self, rows: list[bytes]) -> pd.DataFrame:
        return pd.read_csv(io.BytesIO(self.header + b"".join(rows)), skip_blank_lines=False)


def _fields(text: str) -> list[str]:
    return next(csv.reader([text.rstrip("\r\n")]), [])
