"""Progress bars: drawn (records/s, ETA) only on a terminal and not under -q; sized from
file sizes and Parquet metadata."""

from __future__ import annotations

import io

import pandas as pd

from monitor.ingest.file import FileSource
from monitor.runtime.progress import InputSize, enabled, input_bar, tracked


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_quiet_unless_a_terminal_and_not_q():
    assert not enabled(False, io.StringIO())
    assert not enabled(True, Terminal())
    assert enabled(False, Terminal())


def test_sizes_from_files_and_parquet_metadata(tmp_path):
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_bytes(b'{"x": 1}\n' * 100)
    pq = tmp_path / "b.parquet"
    pd.DataFrame({"x": range(1000)}).to_parquet(pq)
    size = InputSize([str(jsonl), str(pq)])
    assert size.total == 900 + pq.stat().st_size
    assert abs(size.per_row[str(pq)] * 1000 - pq.stat().st_size) < 1e-6


def test_the_bar_follows_the_chunks_to_the_end(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"x": 1}\n' * 5000)
    term = Terminal()
    bar = input_bar("replay", [str(path)], stream=term)
    chunks = list(tracked(FileSource([str(path)], batch_size=1000).chunks(), [str(path)], bar))
    assert len(chunks) == 5
    text = term.getvalue()
    assert "replay" in text and "5,000 records" in text and "rec/s" in text and "100%" in text


def test_no_bar_no_output(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"x": 1}\n' * 10)
    quiet = Terminal()
    bar = input_bar("replay", [str(path)], quiet=True, stream=quiet)
    assert len(list(tracked(FileSource([str(path)]).chunks(), [str(path)], bar))) == 1
    assert quiet.getvalue() == ""
