"""Decode ahead (issue 13): chunks read and decoded on a background thread while the daemon
folds the one before give the same counts, rejects, dead letters and results in the same
order; errors keep their place; the queue is bounded; a stop mid-file saves the position of
the last chunk folded, not of one decoded ahead."""

from __future__ import annotations

import threading
from dataclasses import replace

import orjson
import pytest

from monitor.ingest.ahead import DecodeAhead, Decoded
from monitor.ingest.deadletter import DeadLetter
from monitor.ingest.file import FileSource
from monitor.ingest.source import Chunk, SourceError
from monitor.runtime.daemon import Daemon
from monitor.runtime.file_checkpoint import FileCheckpoint, HeldResults
from slices.load import load_spec
from tests.wait import wait_until

T0 = 1_700_000_000  # on a minute boundary
SPEC = """
models:
  - name: fraud
    task: binary
    window: 1m
    features: {country: categorical, amount: numeric}
    slices:
      - overall: true
      - feature_keys: [country]
"""
BLOCK = 40  # records a chunk


def lines(n: int) -> list[bytes]:
    return [orjson.dumps({"timestamp": T0 + i / 4, "id": f"p{i}", "label": i % 3 == 0,
                          "prediction": {"score": (i * 37 % 100) / 100},
                          "features": {"country": "US" if i % 4 else "BR", "amount": i % 50}})
            for i in range(n)]


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    return load_spec(str(path))


def data_file(tmp_path, irregular: bool = True) -> str:
    out = lines(BLOCK * 12)
    if irregular:  # one block read record by record: junk, a wrong type, a blank line
        at = BLOCK * 5
        out[at + 1] = b'{"timestamp": 1, "prediction": {"score": '
        out[at + 7] = out[at + 7].replace(b'"score":', b'"score":"x","s":')
        out[at + 9] = b""
    path = tmp_path / "data.jsonl"
    path.write_bytes(b"\n".join(out) + b"\n")
    return str(path)


def run(spec, path: str, tmp_path, depth: int, name: str):
    letters = tmp_path / f"dead-{name}.jsonl"
    results: list = []
    daemon = Daemon(spec, decode_ahead=depth, dead_letter=DeadLetter(str(letters)),
                    listeners=[lambda w, r: results.extend(r)])
    took: list[bool] = []
    process = daemon.process

    def spy(chunk):
        took.append(chunk.decoded is not None)
        return process(chunk)

    daemon.process = spy  # type: ignore[method-assign]
    summary = daemon.run(FileSource([path], batch_size=BLOCK).chunks())
    daemon.dead_letter.close()
    keyed = [(r.slice, r.window_start, r.count, r.metrics) for r in results]
    letters_out = [(x["reason"], x.get("raw") or x.get("record"))
                   for x in map(orjson.loads, letters.read_bytes().splitlines())]
    return summary, dict(daemon.tracker.bad), keyed, letters_out, took, daemon.decoder


def test_decoded_ahead_equals_decoded_in_turn_with_an_irregular_block(spec, tmp_path):
    path = data_file(tmp_path)
    *now, took, decoder = run(spec, path, tmp_path, 2, "ahead")
    *before, took0, _ = run(spec, path, tmp_path, 0, "inline")
    assert all(took) and len(took) == 12 and not any(took0)
    assert decoder.slow_blocks == 1 and decoder.fast_blocks == 11  # one block record by record
    summary, bad, keyed, letters = now
    assert summary.records == BLOCK * 12 - 3 and summary.rejected == 3
    assert bad == before[1] and sorted(bad) == [
        "empty_line", "invalid_json", "wrong_type:score"]
    assert letters == before[3] and len(letters) == 3
    assert keyed == before[2] and len(keyed) > 4  # same results, same order
    assert replace(summary, seconds=0) == replace(before[0], seconds=0)


def test_chunks_come_in_order_and_the_source_is_closed_at_the_end():
    closed = threading.Event()

    def source():
        try:
            for i in range(300):
                yield Chunk("lines", [str(i).encode()])
        finally:
            closed.set()

    got = [c.decoded.batch for c in DecodeAhead(
        source(), lambda c: Decoded(c.payload, batch=int(c.payload[0])), depth=1)]
    assert got == list(range(300))
    assert closed.is_set()


def test_an_error_decoding_a_block_is_raised_at_that_block(spec, tmp_path):
    path = data_file(tmp_path, irregular=False)
    outcomes = []
    for depth in (2, 0):
        daemon = Daemon(spec, decode_ahead=depth)
        decode, calls = daemon.decoder.decode_lines, []

        def failing(payload, decode=decode, calls=calls):
            calls.append(threading.current_thread() is threading.main_thread())
            if len(calls) == 4:
                raise ValueError("block 4 is bad")
            return decode(payload)

        daemon.decoder.decode_lines = failing
        with pytest.raises(ValueError, match=r"^block 4 is bad$"):
            daemon.run(FileSource([path], batch_size=BLOCK).chunks())
        outcomes.append((sum(daemon.tracker.records.values()), calls[:4]))
    assert outcomes == [(3 * BLOCK, [False] * 4), (3 * BLOCK, [True] * 4)]


def test_an_error_of_the_source_comes_after_the_chunks_before_it():
    closed = threading.Event()

    def source():
        try:
            yield Chunk("lines", [b"a"])
            yield Chunk("lines", [b"b"])
            raise SourceError("cannot read b.jsonl: gone")
        finally:
            closed.set()

    got = []
    with pytest.raises(SourceError, match="gone"):
        for chunk in DecodeAhead(source(), lambda c: Decoded(c.payload, batch=c.payload)):
            got.append(chunk.decoded.batch)
    assert got == [[b"a"], [b"b"]] and closed.is_set()


def test_the_reader_waits_when_depth_chunks_are_decoded(spec):
    pulled, closed = [], threading.Event()

    def source():
        try:
            for i in range(100):
                pulled.append(i)
                yield Chunk("lines", [b"x"])
        finally:
            closed.set()

    ahead = DecodeAhead(source(), lambda c: Decoded(c.payload), depth=3)
    it = iter(ahead)
    next(it)  # the daemon holds one chunk and folds it slowly
    wait_until(lambda: ahead.waits["reader"] and len(pulled) >= 5,
               what="the reader waiting on a full queue")
    it.close()  # a stop: the thread ends and closes the source
    assert closed.wait(30)
    assert len(pulled) == 1 + 3 + 1  # taken, queued, and one in hand waiting to be queued
    with pytest.raises(ValueError, match="'depth' parameter of DecodeAhead"):
        DecodeAhead([], lambda c: None, depth=0)


def test_a_stop_mid_file_saves_the_last_chunk_folded_then_resumes_exactly(spec, tmp_path):
    path, db = data_file(tmp_path, irregular=False), str(tmp_path / "cp.db")
    pulled = []

    def counted(chunks):
        for chunk in chunks:
            pulled.append(chunk.position.offset)
            yield chunk

    daemon = Daemon(spec, decode_ahead=2)
    cp = FileCheckpoint(db, daemon, HeldResults([]))
    folded = []
    process = daemon.process

    def stop_after_4(chunk):  # SIGTERM while block 4 is folded: blocks 5-6 decoded ahead
        out = process(chunk)
        folded.append(chunk.position.offset)
        if len(folded) == 4:
            wait_until(lambda: len(pulled) >= 6, what="blocks read ahead")
            daemon.stop.set()
        return out

    daemon.process = stop_after_4  # type: ignore[method-assign]
    cp.run(counted(FileSource([path], batch_size=BLOCK).chunks()))
    cp.save()
    cp.close()
    assert len(folded) == 4 and len(pulled) >= 6
    assert sum(daemon.tracker.records.values()) == 4 * BLOCK
    again = Daemon(spec, decode_ahead=2)
    cp = FileCheckpoint(db, again, HeldResults([]))
    resume = cp.restore()
    assert [p["offset"] for p in resume.values()] == [folded[-1]]
    cp.run(FileSource([path], batch_size=BLOCK, resume=resume).chunks())
    cp.close()
    assert sum(again.tracker.records.values()) == 12 * BLOCK  # nothing lost, nothing twice
