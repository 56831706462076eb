"""Bad input files: oversized lines and gzip bombs, blank lines, ragged and non-UTF-8 CSV,
Parquet timestamps, a growing dead-letter file, --follow on .gz. Each bad record is a dead
letter with a reason; memory stays bounded; no traceback reaches the user."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import threading
import time

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from monitor.ingest.deadletter import DeadLetter
from monitor.ingest.decode import Reject
from monitor.ingest.file import FileSource
from monitor.runtime.app import RunOptions, run
from slices.load import load_spec_text

NOW = int(time.time()) // 60 * 60 - 3600
SPEC = """
models:
  - name: fraud
    task: binary
    window: 1m
"""


def good(i: int = 0) -> bytes:
    return orjson.dumps({"timestamp": NOW + i, "prediction": {"score": 0.5}}) + b"\n"


def reasons(path) -> list[str]:
    with open(path, "rb") as fh:
        return [orjson.loads(x)["reason"] for x in fh]


def run_spec(tmp_path, inputs, **kw):
    dl = tmp_path / "dead.jsonl"
    summary = run(load_spec_text(SPEC), RunOptions(inputs=tuple(map(str, inputs)), listen="",
                                                   quiet=True, dead_letter=str(dl), **kw),
                  out=io.StringIO())
    return summary, (reasons(dl) if dl.exists() else [])


def test_an_oversized_line_is_dead_lettered_truncated_and_the_rest_read(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_bytes(good(1) + b'{"x": "' + b"a" * (5 << 20) + b'"}\n' + good(2))
    chunks = list(FileSource([str(path)], max_record_bytes=1 << 20).chunks())
    items = [x for c in chunks for x in c.payload]
    assert items[0] == good(1) and items[2] == good(2)
    assert isinstance(items[1], Reject) and items[1].reason == "too_large"
    assert len(items[1].raw) <= 4096
    summary, why = run_spec(tmp_path, [path])
    assert (summary.records, why) == (2, ["too_large"])
    assert os.path.getsize(tmp_path / "dead.jsonl") < 10_000


def test_a_gzip_bomb_line_costs_bounded_memory(tmp_path):
    path = tmp_path / "bomb.jsonl.gz"
    with gzip.open(path, "wb", compresslevel=9) as fh:
        fh.write(good(1))
        for _ in range(300):  # one 300 MB line: ~300 KB compressed
            fh.write(b"a" * (1 << 20))
        fh.write(b"\n" + good(2))
    code = ("import re, sys\nfrom monitor.ingest.file import FileSource\n"
            "peak = lambda: int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status')"
            ".read())[1])\nbefore = peak()\n"
            "n = sum(len(c.payload) for c in FileSource([sys.argv[1]]).chunks())\n"
            "print(n, peak() - before)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         check=True, timeout=300, text=True).stdout.split()
    assert int(out[0]) == 3
    assert int(out[1]) < 50 * 1024  # KiB of peak RSS growth: far below the line's 300 MB


def test_follow_skips_a_line_longer_than_the_old_16mb_poll_and_goes_on(tmp_path):
    path = tmp_path / "live.jsonl"
    path.write_bytes(good(1) + b"b" * (17 << 20))  # an oversized line, newline not yet there
    stop = threading.Event()
    got: list = []
    source = FileSource([str(path)], follow=True, poll_interval=0.02, stop=stop,
                        max_record_bytes=1 << 20)
    thread = threading.Thread(target=lambda: [got.extend(c.payload) for c in source.chunks()])
    thread.start()
    try:
        deadline = time.time() + 60
        while len(got) < 2 and time.time() < deadline:
            time.sleep(0.02)
        with open(path, "ab") as fh:
            fh.write(b"b" * 1000 + b"\n" + good(2))
        while len(got) < 3 and time.time() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(60)
    assert got[0] == good(1) and got[1].reason == "too_large" and got[2] == good(2)
    assert len(got) == 3


def test_blank_lines_are_counted(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(good(1) + b"\n   \n" + good(2) + b"\n")
    summary, why = run_spec(tmp_path, [path])
    assert summary.records == 2 and why == ["empty_line"] * 3


def test_ragged_and_non_utf8_csv_rows_are_dead_letters(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(f"timestamp,prediction.score\n{NOW},0.1\n{NOW},0.2,extra\n{NOW}\n"
                     f"{NOW},0.3\n".encode() + b"\xff\xfe,0.4\n" + f"{NOW},0.5\n".encode())
    summary, why = run_spec(tmp_path, [path])
    assert summary.records == 3
    assert sorted(why) == ["bad_csv_row", "bad_csv_row", "bad_encoding"]


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", [None, "UTC", "America/New_York"])
def test_parquet_native_timestamps_are_read(tmp_path, unit, tz):
    stamps = pd.to_datetime([NOW, NOW + 61], unit="s", utc=True)
    stamps = stamps.tz_convert(tz) if tz else stamps.tz_localize(None)
    table = pa.table({"timestamp": pa.array(stamps.as_unit(unit)),
                      "prediction.score": [0.1, 0.2]})
    path = tmp_path / "a.parquet"
    pq.write_table(table, path)
    summary, why = run_spec(tmp_path, [path])
    assert (summary.records, summary.windows, why) == (2, 2, [])


def test_the_dead_letter_file_rotates_and_counts_what_it_drops(tmp_path):
    path = tmp_path / "dl.jsonl"
    dl = DeadLetter(str(path), max_bytes=10_000)
    for i in range(1000):
        dl.write("bad_time", {"i": i, "pad": "x" * 50})
    dl.close()
    files = [path, tmp_path / "dl.jsonl.1"]
    kept = sum(len(reasons(f)) for f in files)
    assert all(os.path.getsize(f) <= 10_000 for f in files)
    assert dl.written == 1000 and kept + dl.dropped == 1000 and dl.dropped > 0
    families = {m.name: m.samples[0].value for m in dl.collect()}
    assert families == {"slicewatch_dead_letter_lines": 1000,
                        "slicewatch_dead_letter_dropped": dl.dropped}


def test_follow_on_gz_is_a_one_line_error(tmp_path):
    path = tmp_path / "a.jsonl.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(good(1))
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    out = subprocess.run([sys.executable, "-m", "monitor.cli", "run", "-c", str(spec), "-i",
                          str(path), "--follow", "--listen", "", "-q"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0 and "cannot follow" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_long_open_quoted_csv_field_costs_linear_time():
    """Each line of a row whose quoted field stays open used to re-join and re-count the
    whole row: quadratic (40k lines took 17 s, 500k would take most of an hour)."""
    from monitor.ingest.csvrows import CsvRows

    rows = CsvRows(b"a,b\n", limit=1 << 30)
    done = threading.Event()

    def feed() -> None:
        assert rows.add(b'1,"x\n') is None
        for _ in range(200_000):
            assert rows.add(b"y\n") is None
        reject = rows.finish()
        assert reject is not None and reject.reason == "bad_csv_row"
        done.set()

    worker = threading.Thread(target=feed, daemon=True)
    worker.start()
    worker.join(120)  # linear: well under a second; quadratic: over ten minutes
    assert done.is_set(), "200k lines of one open quoted field did not finish in 120 s"


def test_a_file_checkpoint_whose_state_does_not_fit_is_one_line_exit_1(tmp_path):
    from monitor.state.checkpoint import Checkpoint

    data = tmp_path / "in.jsonl"
    data.write_bytes(good(1))
    db = tmp_path / "cp.db"
    cp = Checkpoint(str(db))
    cp.save({}, {"daemon": {"format": 2, "pipelines": {}}, "files": {}})
    cp.close()
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC + f"checkpoint: {db}\n")
    out = subprocess.run([sys.executable, "-m", "monitor.cli", "run", "-c", str(spec), "-i",
                          str(data), "--listen", "", "-q"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert "does not fit" in out.stderr and out.stderr.strip().count("\n") == 0, out.stderr


def test_a_10_mb_open_quoted_csv_field_is_one_reject_each_line_read_once(tmp_path,
                                                                          monkeypatch):
    """A quoted field opened at line 102 and never closed, then 10 MB of lines: one
    ``bad_csv_row`` reject at line 102, every byte after it handed once to the row checker
    and every block once to the block reader: what keeps the read linear, checked without a
    clock (measured: bench/RESULTS.md, "CSV: an unclosed quoted field")."""
    from monitor.ingest import csvblocks, csvrows

    path = tmp_path / "open.csv"
    head = b"timestamp,prediction.score\n" + b"".join(
        f"{NOW + i},0.5\n".encode() for i in range(100)) + f'{NOW},"open\n'.encode()
    tail = f"{NOW + 200},0.5\n".encode() * (10_000_000 // 15)
    path.write_bytes(head + tail)
    size = path.stat().st_size
    handed = {"rows": 0, "blocks": 0}
    add, read_lines = csvrows.CsvRows.add, csvblocks.read_lines

    def counted_add(self, line, at=None):
        handed["rows"] += len(line)
        return add(self, line, at)

    def counted_read_lines(src, n):
        block, whole = read_lines(src, n)
        handed["blocks"] += len(block)
        return block, whole

    monkeypatch.setattr(csvrows.CsvRows, "add", counted_add)
    monkeypatch.setattr(csvblocks, "read_lines", counted_read_lines)
    dl = tmp_path / "dead.jsonl"
    summary = run(load_spec_text(SPEC), RunOptions(inputs=(str(path),), listen="", quiet=True,
                                                   dead_letter=str(dl)), out=io.StringIO())
    dead = [orjson.loads(x) for x in dl.read_bytes().splitlines()]
    assert [(d["reason"], d.get("line")) for d in dead] == [("bad_csv_row", 102)], dead
    assert summary.records == 100 and summary.rejected == 1, summary
    assert len(tail) < handed["rows"] <= size, (handed, size)
    assert handed["blocks"] <= size, (handed, size)
