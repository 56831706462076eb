"""A checkpoint state damaged on disk (one flipped byte) is refused at load the way the
README promises for bad state files (one line, exit 1, nothing resumed from it), instead of
loading and failing or counting wrong later. Checkpoints written before the checksum existed
still load (their rows have none until the next save)."""

from __future__ import annotations

import io
import sqlite3
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import orjson
import pytest

from monitor.cli import main
from monitor.state.checkpoint import Checkpoint, CheckpointError, decode_state, encode_state
from monitor.state.encoding import StateError

T0 = 1_700_000_000

SPEC = """
models:
  - name: m
    task: binary
    window: 1m
    metrics: [count, accuracy]
    features: {x: numeric}
checkpoint: cp.db
"""


def _lines(start: int, n: int) -> bytes:
    return b"".join(orjson.dumps({"timestamp": T0 + start + i, "prediction": {"score": 0.25},
                                  "label": i % 2, "features": {"x": float(i)}}) + b"\n"
                    for i in range(n))


def _run(*inputs: str) -> tuple[int, str]:
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        code = main(["run", "-c", "spec.yaml", *(a for i in inputs for a in ("-i", i)),
                     "--listen", "", "-q"])
    return code, err.getvalue()


def _blob(db: Path) -> bytes:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT state FROM states").fetchone()[0]


def _put(db: Path, blob: bytes) -> None:
    with sqlite3.connect(db) as c:
        c.execute("UPDATE states SET state=?", (blob,))


def _flip_that_still_decodes(blob: bytes) -> bytes:
    """``blob`` with one byte flipped where the state still decodes (a number changed, not
    the structure): what a checksum alone can catch. From the end, deterministic."""
    for pos in range(len(blob) - 1, 5, -1):
        damaged = bytearray(blob)
        damaged[pos] ^= 0x40
        try:
            decode_state(bytes(damaged))
        except StateError:
            continue
        return bytes(damaged)
    raise AssertionError("no flip decodes")


@pytest.fixture
def first_run(tmp_path, monkeypatch):
    """A file run whose window stays open: its state is in the checkpoint."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(SPEC)
    (tmp_path / "a.jsonl").write_bytes(_lines(0, 40))
    (tmp_path / "b.jsonl").write_bytes(_lines(120, 40))
    code, err = _run("a.jsonl")
    assert code == 0, err
    return tmp_path / "cp.db"


def test_a_flipped_byte_in_the_state_is_refused_at_load_in_one_line(first_run):
    db = first_run
    _put(db, _flip_that_still_decodes(_blob(db)))
    code, err = _run("a.jsonl", "b.jsonl")
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 1, err
    assert len(lines) == 1 and lines[0].startswith("slicewatch: error: checkpoint "), lines
    assert "is damaged (CRC32" in lines[0] and "delete it" in lines[0], lines
    assert "Traceback" not in err


@pytest.mark.parametrize("seed", range(3))
def test_every_flip_of_a_saved_state_is_refused(tmp_path, seed):
    """Any byte (past the header, header too): a CheckpointError at load, never a state."""
    cp = Checkpoint(str(tmp_path / "cp.db"))
    cp.save({"t:0": 3}, {"w": [1.5, 2.5], "n": 40, "name": "overall"})
    blob = _blob(tmp_path / "cp.db")
    for pos in range(seed, len(blob), 3):
        damaged = bytearray(blob)
        damaged[pos] ^= 1 << (pos % 8)
        _put(tmp_path / "cp.db", bytes(damaged))
        with pytest.raises(CheckpointError):
            Checkpoint(str(tmp_path / "cp.db")).load()


def _old_schema(db: Path, state: dict) -> None:
    """A database as slicewatch wrote it before states had a checksum."""
    with sqlite3.connect(db) as c:
        c.executescript("""
CREATE TABLE positions (key TEXT PRIMARY KEY, next INTEGER NOT NULL, owner TEXT NOT NULL,
    seq INTEGER NOT NULL, saved_at REAL NOT NULL);
CREATE TABLE states (owner TEXT PRIMARY KEY, state BLOB NOT NULL, seq INTEGER NOT NULL,
    saved_at REAL NOT NULL);
CREATE TABLE leases (owner TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL,
    since REAL NOT NULL);""")
        c.execute("INSERT INTO positions VALUES ('t:0', 7, 'default', 4, 0)")
        c.execute("INSERT INTO states VALUES ('default', ?, 4, 0)", (encode_state(state),))


def test_a_checkpoint_without_checksums_loads_and_gets_one_at_its_next_save(tmp_path):
    db = tmp_path / "old.db"
    _old_schema(db, {"n": 1, "w": [0.5]})
    cp = Checkpoint(str(db))
    assert cp.load() == ({"t:0": 7}, {"n": 1, "w": [0.5]}) and cp.seq == 4
    cp.save({"t:0": 9}, {"n": 2})
    cp.close()
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT crc FROM states").fetchone()[0] is not None
    _put(db, _flip_that_still_decodes(_blob(db)))
    with pytest.raises(CheckpointError, match="is damaged"):
        Checkpoint(str(db)).load()


def test_a_run_resumes_from_a_checkpoint_written_before_checksums(first_run):
    db = first_run
    with sqlite3.connect(db) as c:  # the run's own state, in the old table
        c.execute("ALTER TABLE states DROP COLUMN crc")
    code, err = _run("a.jsonl", "b.jsonl")
    assert code == 0, err
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT crc FROM states").fetchone()[0] is not None
