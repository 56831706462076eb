"""Checkpoint state safety (#11.4): loading a checkpoint cannot run code, is bounded in size,
the database is private, and every stateful class round-trips through the encoding."""

from __future__ import annotations

import array
import base64
import math
import os
import pickle
import sqlite3
import stat
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.drift.concept import BINARY_ONLY, DETECTORS, ConceptMonitor
from monitor.drift.errors import DriftParamError
from monitor.ingest.source import Chunk
from monitor.runtime.daemon import Daemon
from monitor.state.checkpoint import Checkpoint, CheckpointError, decode_state, encode_state
from slices.load import load_spec

REPO = Path(__file__).resolve().parents[2]


class _RunsACommand:
    """The issue's payload: unpickling it runs a shell command."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _fraud_state() -> tuple[object, dict]:
    spec = load_spec(str(REPO / "configs/fraud.yaml"))
    daemon = Daemon(spec)
    lines = (REPO / "examples/fraud.jsonl").read_bytes().splitlines()[:4000]
    daemon.process(Chunk("lines", lines))
    return spec, daemon.checkpoint_state()


def _concept_states(state) -> list[dict]:
    """Every concept-monitor state inside a daemon state (found by shape)."""
    out = []
    if isinstance(state, dict):
        if "detector" in state and "events" in state and "params" in state:
            out.append(state)
        for v in state.values():
            out += _concept_states(v)
    elif isinstance(state, list | tuple):
        for v in state:
            out += _concept_states(v)
    return out


def test_a_crafted_plain_looking_checkpoint_runs_nothing(tmp_path):
    """The issue's checkpoint: only strings, lists and dicts, one string a base64 pickle
    that runs a command; loading it fails with a clear error and runs nothing."""
    marker = tmp_path / "pwned"
    spec, state = _fraud_state()
    concept = _concept_states(state)
    assert concept, "the fraud spec watches concept drift"
    payload = base64.b64encode(pickle.dumps(_RunsACommand(marker))).decode()
    for c in concept:
        c.pop("state", None)
        c["pickle"] = payload  # the old format's field
    cp = Checkpoint(str(tmp_path / "cp.db"))
    cp.save({"t:0": 1}, state)
    _, loaded = Checkpoint(str(tmp_path / "cp.db")).load()
    with pytest.raises(DriftParamError, match="not of this slicewatch's format"):
        Daemon(spec).load_state(loaded)
    # a payload in the new field's place is just bytes for River's own decoder, or refused
    for c in concept:
        c["state"] = {"_helper": {"args": [0.002, 32, 5, 5, 10], "bytes": payload}}
    with pytest.raises(DriftParamError):
        Daemon(spec).load_state(decode_state(encode_state(state)))
    assert not marker.exists()


def test_a_pickle_blob_in_the_database_is_refused_without_unpickling(tmp_path):
    """Blobs of older builds come without a checksum (``crc`` NULL), as set here and below:
    their format is what refuses them."""
    marker = tmp_path / "pwned"
    path = tmp_path / "cp.db"
    Checkpoint(str(path)).save({"t:0": 1}, {"n": 1})
    with sqlite3.connect(path) as db:
        db.execute("UPDATE states SET state=?, crc=NULL",
                   (pickle.dumps({"x": _RunsACommand(marker)}),))
    with pytest.raises(CheckpointError, match=r"pickle format of an older slicewatch.*delete"):
        Checkpoint(str(path)).load()
    assert not marker.exists()


def _kafka_spec(tmp_path: Path, free_port) -> Path:
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"""
version: 1
source:
  type: kafka
  kafka:
    bootstrap_servers: 127.0.0.1:{free_port()}
    group_id: g
    topics: {{predictions: p}}
checkpoint: {tmp_path / "cp.db"}
models:
  - name: m
    task: binary
    window: 1m
    metrics: [count]
""")
    return spec


@pytest.mark.parametrize("blob_kind", ["pickle", "bound"])
def test_the_daemon_refuses_such_a_checkpoint_in_one_line(tmp_path, free_port, blob_kind):
    """``slicewatch run`` on a checkpoint it refuses: one line, exit 1, no traceback, and the
    payload never ran (the checkpoint is read before the broker is contacted)."""
    marker = tmp_path / "pwned"
    spec = _kafka_spec(tmp_path, free_port)
    Checkpoint(str(tmp_path / "cp.db")).save({"p:0": 1}, {"n": 1})
    blob = (pickle.dumps(_RunsACommand(marker)) if blob_kind == "pickle"
            else encode_state({"big": b"\0" * (1 << 20)}))
    with sqlite3.connect(tmp_path / "cp.db") as db:
        db.execute("UPDATE states SET state=?, crc=NULL", (blob,))
    env = {**os.environ, "PYTHONPATH": str(REPO),
           "SLICEWATCH_MAX_STATE_BYTES": str(1 << 19)}
    proc = subprocess.run([sys.executable, "-m", "monitor.cli", "run", "-c", str(spec), "-q"],
                          cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("slicewatch: error: checkpoint"), lines
    want = "pickle format" if blob_kind == "pickle" else "over the bound of 524288 bytes"
    assert want in lines[0]
    assert not marker.exists()


def test_a_shared_reference_expansion_bomb_is_refused_within_the_bounds():
    # pickle: a few hundred bytes of nested shared references expand to 2**60 elements
    lst: list = [0]
    for _ in range(60):
        lst = [lst, lst]
    bomb = pickle.dumps(lst)
    assert len(bomb) < 2000
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match="pickle format"):
        decode_state(bomb)
    # this format's references (one array, referenced 100 000 times): counted at full size
    big = array.array("d", bytes(1 << 20))
    blob = encode_state({"x": [big] * 100_000})
    assert len(blob) < 2 << 20  # a reference is a few bytes
    with pytest.raises(CheckpointError, match="expands beyond its bound"):
        decode_state(blob, max_bytes=16 << 20)
    fine = decode_state(encode_state({"x": [big] * 30}), max_bytes=16 << 20)["x"]
    assert fine[29] is fine[0] and fine[0].tobytes() == big.tobytes()  # within the bound: ok
    # containers: a blob of empty lists may not grow into more objects than its size allows
    nested = encode_state({"x": [[] for _ in range(200_000)]})
    with pytest.raises(CheckpointError, match="more containers"):
        decode_state(nested, max_bytes=len(nested) * 4)
    assert time.perf_counter() - t0 < 30


def test_a_zlib_bomb_is_refused_without_decompressing(tmp_path):
    z = zlib.compressobj(9)
    parts = [z.compress(b'{"x": "')] + [z.compress(b"0" * (1 << 20)) for _ in range(256)]
    bomb = b"".join(parts) + z.compress(b'"}') + z.flush()
    assert len(bomb) < 1 << 20  # 256 MiB of JSON in well under 1 MiB
    with pytest.raises(CheckpointError, match="zlib-JSON format"):
        decode_state(bomb)
    path = tmp_path / "cp.db"
    Checkpoint(str(path)).save({}, {"n": 1})
    with sqlite3.connect(path) as db:
        db.execute("UPDATE states SET state=?, crc=NULL", (bomb,))
    with pytest.raises(CheckpointError, match="zlib-JSON format"):
        Checkpoint(str(path)).load()


def test_state_over_the_bound_is_refused_before_it_is_read(tmp_path):
    path = str(tmp_path / "cp.db")
    Checkpoint(path).save({"t:0": 1}, {"big": b"\0" * 100_000})
    with pytest.raises(CheckpointError, match=r"over the bound of 50000 bytes"):
        Checkpoint(path, max_state_bytes=50_000).load()
    assert Checkpoint(path).load()[0] == {"t:0": 1}


def test_the_database_and_its_journal_are_private(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "sub" / "cp.db"
        cp = Checkpoint(str(path))
        cp.save({"t:0": 1}, {"n": 1})
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert all(f.exists() for f in files)
        assert [stat.S_IMODE(f.stat().st_mode) for f in files] == [0o600] * 3
    finally:
        os.umask(old)


@pytest.mark.parametrize("blob", [b"", b"SWST", b"SWST\x02", b"SWST\x02\xc1", b"SWST\x01\x80",
                                  b"SWST\x02\xd7\x09" + b"\0" * 8,
                                  b"SWST\x02\xc7\x05\x04\0\0\0\0\0",
                                  b"SWST\x02\xc7\x02\x02z\0", b"SWST\x02" + b"\x91" * 5000])
def test_malformed_blobs_are_clear_errors(blob):
    with pytest.raises(CheckpointError):
        decode_state(blob)


# ---- round trips --------------------------------------------------------------------------

plain = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=8) | st.integers(-100, 100), inner, max_size=5),
    max_leaves=40)


@settings(max_examples=300, deadline=None)
@given(plain)
def test_plain_data_round_trips(value):
    assert decode_state(encode_state({"v": value})) == {"v": value}


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(allow_nan=True), max_size=50), st.sampled_from("dq"))
def test_arrays_round_trip_with_shared_ones_kept_shared(values, code):
    values = values if code == "d" else [int(v) if math.isfinite(v) and abs(v) < 2**62 else 0
                                          for v in values]
    a = array.array(code, values)
    back = decode_state(encode_state({"a": a, "b": a, "n": np.array(values)}))
    assert back["a"].tobytes() == a.tobytes() and back["a"] is back["b"]
    assert back["n"].tobytes() == np.array(values).tobytes()


def _errors(name: str, task: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if task == "binary":
        rates = np.repeat([0.1, 0.45, 0.05, 0.3], n // 4)
        return (rng.random(rates.size) < rates).astype(float)
    return np.abs(np.concatenate([rng.normal(m, 1, n // 4) for m in (0, 2, 0.5, 3)]))


@pytest.mark.parametrize("name,task", [(n, t) for n in DETECTORS for t in ("binary", "regression")
                                       if not (t == "regression" and n in BINARY_ONLY)])
@pytest.mark.parametrize("cut", [0, 1, 333, 700])
def test_restored_detector_behaves_like_the_river_original(name, task, cut):
    """Through the checkpoint encoding, at any cut: the restored detector signals at the same
    positions, and ends in the same state, as the River detector that was never saved."""
    n = 1000 if name == "KSWIN" else 2800
    errors = _errors(name, task, n, seed=cut)
    original = ConceptMonitor(name, {}, task=task)
    restored = ConceptMonitor(name, {}, task=task)
    restored.update(errors[:cut])
    original.update(errors[:cut])
    restored = ConceptMonitor.from_state(
        decode_state(encode_state({"c": restored.to_state()}))["c"])
    assert original.update(errors[cut:]) == restored.update(errors[cut:])
    assert original.to_state() == restored.to_state()


@pytest.mark.parametrize("config,data", [("configs/fraud.yaml", "examples/fraud.jsonl")])
def test_every_stateful_class_of_a_daemon_round_trips(config, data):
    """A daemon with open windows (metrics, drift summaries, reservoirs, concept detectors,
    label join, tracker): state → encoding → a new daemon → the same state, and the same
    state again after more records."""
    spec = load_spec(str(REPO / config))
    lines = (REPO / data).read_bytes().splitlines()
    a, b = Daemon(spec), Daemon(spec)
    a.process(Chunk("lines", lines[:5000]))
    b.load_state(decode_state(encode_state(a.checkpoint_state())))
    assert encode_state(b.state()) == encode_state(a.state())
    a.process(Chunk("lines", lines[5000:9000]))
    b.process(Chunk("lines", lines[5000:9000]))
    assert encode_state(b.state()) == encode_state(a.state())
