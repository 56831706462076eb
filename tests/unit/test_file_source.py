"""File and stdin sources: JSONL globs, CSV, Parquet, stdin, follow mode."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.ingest.file import FileSource, detect_format
from monitor.ingest.source import SourceError


def test_jsonl_glob_in_order_and_batching(tmp_path):
    (tmp_path / "b.jsonl").write_text('{"i": 3}\n')
    (tmp_path / "a.jsonl").write_text('{"i": 1}\n{"i": 2}\n')
    chunks = list(FileSource([str(tmp_path / "*.jsonl")], batch_size=2).chunks())
    assert [c.payload for c in chunks] == [[b'{"i": 1}\n', b'{"i": 2}\n'], [b'{"i": 3}\n']]
    assert chunks[0].origin.endswith("a.jsonl")


def test_csv_and_parquet_chunks(tmp_path):
    frame = pd.DataFrame({"a": range(5), "b": list("vwxyz")})
    frame.to_csv(tmp_path / "x.csv", index=False)
    frame.to_parquet(tmp_path / "x.parquet")
    for name in ("x.csv", "x.parquet"):
        chunks = list(FileSource([str(tmp_path / name)], batch_size=2).chunks())
        assert [len(c.payload) for c in chunks] == [2, 2, 1]
        frames = [c.payload if isinstance(c.payload, pd.DataFrame) else c.payload.to_pandas()
                  for c in chunks]
        assert pd.concat(frames)["b"].tolist() == list("vwxyz")


def test_missing_file_and_unknown_format_are_clear_errors(tmp_path):
    with pytest.raises(SourceError, match="no file matches"):
        FileSource([str(tmp_path / "nope*.jsonl")])
    with pytest.raises(SourceError, match="cannot tell the format"):
        detect_format("data.xlsx")


def test_stdin_is_read_as_jsonl():
    code = ("from monitor.ingest.file import FileSource\n"
            "print(sum(len(c.payload) for c in FileSource(['-'], batch_size=2).chunks()))")
    out = subprocess.run([sys.executable, "-c", code], input=b'{"a":1}\n{"a":2}\n{"a":3}\n',
                         capture_output=True, check=True)
    assert out.stdout.strip() == b"3"


def test_follow_tails_a_growing_file_and_waits_for_complete_lines(tmp_path):
    path = tmp_path / "live.jsonl"
    path.write_bytes(b'{"i": 1}\n{"i": 2')  # second line not finished yet
    stop = threading.Event()
    source = FileSource([str(path)], follow=True, poll_interval=0.02, stop=stop)
    got: list[bytes] = []

    def consume():
        for chunk in source.chunks():
            got.extend(chunk.payload)

    thread = threading.Thread(target=consume)
    thread.start()
    deadline = time.time() + 5
    while not got and time.time() < deadline:
        time.sleep(0.02)
    assert got == [b'{"i": 1}\n']
    with open(path, "ab") as fh:
        fh.write(b'}\n{"i": 3}\n')
    while len(got) < 3 and time.time() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(5)
    assert got == [b'{"i": 1}\n', b'{"i": 2}\n', b'{"i": 3}\n']


def test_follow_reads_what_was_written_before_stop(tmp_path):
    """Lines appended while the consumer handles a chunk, then stop: they are still read
    (the demo's last window went missing when its writer finished during a window close)."""
    path = tmp_path / "f.jsonl"
    path.write_bytes(b'{"a": 1}\n')
    stop = threading.Event()
    got = []
    for chunk in FileSource([str(path)], follow=True, poll_interval=0.01, stop=stop).chunks():
        got.extend(chunk.payload)
        if len(got) == 1:  # the writer appends its last line and says it is done
            with path.open("ab") as fh:
                fh.write(b'{"a": 2}\n')
            stop.set()
    assert got == [b'{"a": 1}\n', b'{"a": 2}\n']


def test_parquet_is_read_batch_by_batch_never_whole(tmp_path, monkeypatch):
    """Memory stays flat over file size: the reader hands on each record batch as it reads
    it (here 4 row groups, 10 batches), and a chunk is out before the next batch is read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"timestamp": list(range(1000)), "x": [0.5] * 1000}), path,
                   row_group_size=250)
    read: list[int] = []
    calls: list[dict] = []
    real = pq.ParquetFile.iter_batches

    def counted(self, *args, **kwargs):
        calls.append(kwargs)
        for rb in real(self, *args, **kwargs):
            read.append(len(rb))
            yield rb

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", counted)
    chunks = FileSource([str(path)], batch_size=100).chunks()
    first = next(chunks)
    assert len(first.payload) == 100 and read == [100]
    assert isinstance(first.payload, pa.RecordBatch)
    rest = list(chunks)
    assert [len(c.payload) for c in rest] == [100] * 9 and read == [100] * 10
    assert calls == [{"batch_size": 100, "use_threads": False}]
    assert [c.position.offset for c in rest][-1] == 1000


def test_parquet_reading_holds_a_row_group_or_so_never_the_file(tmp_path):
    """Arrow's allocations while the chunks go by stay at a few row groups' worth (a
    pre-buffered reader keeps every column chunk it has read until the end)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "big.parquet"
    rows, groups = 5_000, 40
    table = pa.table({"timestamp": np.arange(rows * groups, dtype=np.float64),
                      "x": np.random.default_rng(0).random(rows * groups)})
    pq.write_table(table, path, row_group_size=rows, compression="none")
    group_bytes = table.nbytes // groups
    before, seen = pa.total_allocated_bytes(), []
    for chunk in FileSource([str(path)], batch_size=rows).chunks():
        seen.append(pa.total_allocated_bytes() - before)
        del chunk
    assert len(seen) == groups
    assert max(seen) < 4 * group_bytes, (max(seen), group_bytes, table.nbytes)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.sampled_from([b'{"a": 1}\n', b'{"b": "x y"}\r\n', b"\n", b"  \n",
                                       b"\r\n", b"x" * 70 + b"\n", b"y" * 300, b"a\rb\n",
                                       b'{"c": [1, 2]}', b"\x0bz\n"]), max_size=30),
       batch_size=st.integers(1, 7))
def test_jsonl_blocks_give_the_items_and_positions_line_reading_gives(tmp_path, lines,
                                                                      batch_size):
    """A plain JSONL file is split a block at a time; its gzip copy is read line by line
    (the reference): the same items (lines, too_large, empty_line) and offsets."""
    import gzip

    data = b"".join(lines)
    plain, packed = tmp_path / "a.jsonl", tmp_path / "a.jsonl.gz"
    plain.write_bytes(data)
    packed.write_bytes(gzip.compress(data))

    def read(path):
        return [([x if isinstance(x, bytes) else (x.reason, x.raw, x.detail)
                  for x in c.payload], c.position.offset, c.position.skipping)
                for c in FileSource([str(path)], batch_size=batch_size,
                                    max_record_bytes=64).chunks()]

    assert read(plain) == read(packed)
