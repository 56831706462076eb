"""Checkpoint store: atomic save/load, fencing between owners, state encoding; and the Kafka
settings parser (validation, ${ENV} substitution, secret masking)."""

from __future__ import annotations

import math
import multiprocessing
import os
import sqlite3
import zlib

import numpy as np
import orjson
import pytest

from monitor.ingest.kafka import consumer_config, lag_metrics, mask, parse_kafka_settings, scrub
from monitor.ingest.source import Chunk, SourceError
from monitor.runtime.daemon import Daemon
from monitor.state.checkpoint import Checkpoint, CheckpointError, Fenced, decode_state, encode_state


def test_save_then_load_round_trips_positions_and_state(tmp_path):
    cp = Checkpoint(str(tmp_path / "cp.db"), owner="a")
    assert cp.load() is None
    state = {"w": -math.inf, "x": [1.5, math.nan, math.inf], "nested": {"k": [[1, 2], "s"]}}
    assert cp.save({"t:0": 10, "t:1": 7}, state) == 1
    assert cp.save({"t:0": 12}, {**state, "w": 3.0}) == 2
    positions, loaded = Checkpoint(str(tmp_path / "cp.db"), owner="a").load()
    assert positions == {"t:0": 12, "t:1": 7}
    assert loaded["w"] == 3.0 and loaded["nested"] == {"k": [[1, 2], "s"]}
    assert loaded["x"][0] == 1.5 and math.isnan(loaded["x"][1]) and loaded["x"][2] == math.inf


def test_state_encoding_keeps_non_finite_floats_and_refuses_classes():
    state = {"a": -math.inf, "b": [1, (2, 3)], "d": 0.1, "e": b"raw"}
    back = decode_state(encode_state(state))
    assert back == {"a": -math.inf, "b": [1, (2, 3)], "d": 0.1, "e": b"raw"}
    back = decode_state(encode_state({"x": np.float64(1.5)}))  # numpy scalars: plain numbers
    assert back == {"x": 1.5} and type(back["x"]) is float
    with pytest.raises(CheckpointError, match="type object"):
        encode_state({"x": object()})
    legacy = zlib.compress(orjson.dumps({"w": {"$f": "-inf"}, "v": [1.5]}))
    with pytest.raises(CheckpointError, match=r"zlib-JSON format of an older slicewatch.*delete"):
        decode_state(legacy)  # older formats are refused with a clear message


def test_a_real_daemon_state_survives_the_round_trip(tmp_path):
    from slices.load import load_spec
    spec = load_spec("configs/fraud.yaml")
    daemon = Daemon(spec)
    with open("examples/fraud.jsonl", "rb") as fh:
        every = fh.read().splitlines()
    lines = every[:3000]
    daemon.process(Chunk("lines", lines))
    cp = Checkpoint(str(tmp_path / "cp.db"))
    cp.save({"f": 3000}, daemon.state())
    again = Daemon(spec)
    again.load_state(cp.load()[1])
    rest = every[3000:]
    a = [r.__dict__ for r in daemon.process(Chunk("lines", rest)) + daemon.flush()]
    b = [r.__dict__ for r in again.process(Chunk("lines", rest)) + again.flush()]
    assert len(a) > 10
    assert [(r["slice"], r["window_start"], r["count"]) for r in a] == \
           [(r["slice"], r["window_start"], r["count"]) for r in b]


def test_compact_checkpoint_state_resumes_exactly_like_the_plain_state(tmp_path):
    """``checkpoint_state`` (reservoirs as array.array, shared keys once) restores to the same
    daemon as the JSON-able ``state``: equal states, and equal again after more records —
    drift summaries (histograms, moments, reservoir samples and keys) included."""
    import json

    from slices.load import load_spec
    spec = load_spec("configs/fraud.yaml")
    assert any(m.drift.enabled for m in spec.models)
    with open("examples/fraud.jsonl", "rb") as fh:
        every = fh.read().splitlines()
    daemon = Daemon(spec)
    daemon.process(Chunk("lines", every[:4000]))
    blob = encode_state(daemon.checkpoint_state())
    assert b"array" not in blob  # no class names in the blob
    plain = encode_state(daemon.state())
    assert len(blob) < len(plain)
    compact, json_like = Daemon(spec), Daemon(spec)
    compact.load_state(decode_state(blob))
    json_like.load_state(json.loads(json.dumps(daemon.state())))
    dump = lambda d: json.dumps(d.state(), sort_keys=True)  # noqa: E731
    assert dump(compact) == dump(json_like) == dump(daemon)
    for d in (daemon, compact, json_like):
        d.process(Chunk("lines", every[4000:8000]))
    assert dump(compact) == dump(json_like) == dump(daemon)
    back = decode_state(encode_state({"x": np.arange(6.0).reshape(2, 3)}))["x"]
    assert back.shape == (2, 3) and back.tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(CheckpointError, match="dtype object"):
        encode_state({"x": np.array([None])})  # object arrays: never


def test_save_is_fenced_when_another_owner_claimed_a_position(tmp_path):
    path = str(tmp_path / "cp.db")
    a, b = Checkpoint(path, owner="a"), Checkpoint(path, owner="b")
    a.save({"t:0": 5, "t:1": 9}, {"n": 1})
    assert b.claim(["t:1", "t:2"]) == {"t:1": 9}  # t:2 has never been saved
    with pytest.raises(Fenced, match="t:1") as err:
        a.save({"t:0": 6, "t:1": 11}, {"n": 2})
    assert err.value.lost == ["t:1"]
    # nothing of the fenced save was written: a's state and t:0 are as before
    assert a.load() == ({"t:0": 5}, {"n": 1})
    assert b.save({"t:1": 12, "t:2": 1}, {"m": 1}) == 1
    assert a.positions() == {"t:0": (5, "a"), "t:1": (12, "b"), "t:2": (1, "b")}
    assert a.owners() == ["a", "b"]


def _writer(path: str, owner: str, n: int) -> None:
    cp = Checkpoint(path, owner=owner)
    for i in range(n):
        cp.save({f"{owner}:0": i + 1}, {"i": i + 1})


def test_concurrent_processes_each_see_only_complete_saves(tmp_path):
    path = str(tmp_path / "cp.db")
    Checkpoint(path)  # create the schema once
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, o, 60)) for o in ("x", "y")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    for owner in ("x", "y"):
        positions, state = Checkpoint(path, owner=owner).load()
        assert positions == {f"{owner}:0": 60} and state == {"i": 60}
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_drop_state_and_lease(tmp_path):
    path = str(tmp_path / "cp.db")
    cp = Checkpoint(path, owner="a")
    cp.save({}, {"s": 1})
    cp.drop_state()
    assert cp.load() is None
    cp.acquire("host", os.getpid())
    other = Checkpoint(path, owner="a")
    with pytest.raises(CheckpointError, match="in use by pid"):
        other.acquire("host", os.getppid())  # a live pid other than the holder
    cp.release()
    other.acquire("host", os.getppid())
    with pytest.raises(CheckpointError, match="non-empty"):
        Checkpoint(path, owner="")


# ---- settings ---------------------------------------------------------------------------

BASE = {"bootstrap_servers": "127.0.0.1:9092", "group_id": "g", "topics": {"predictions": "p"}}


def test_settings_defaults_and_consumer_config():
    s = parse_kafka_settings(BASE, env={})
    assert (s.consume_batch, s.instance_id, s.dead_letter_topic) == (20000, "default", None)
    conf = consumer_config(s)
    assert conf["enable.auto.commit"] is False and conf["enable.auto.offset.store"] is False
    assert conf["group.id"] == "g" and conf["queued.max.messages.kbytes"] > 0


def test_env_substitution_and_masking():
    d = {**BASE, "config": {"security.protocol": "SASL_SSL", "sasl.username": "${U}",
                            "sasl.password": "pre-${PW}-post", "ssl.key.password": "${PW}"}}
    s = parse_kafka_settings(d, env={"U": "alice", "PW": "s3cret!"})
    assert s.config["sasl.username"] == "alice"
    assert s.config["sasl.password"] == "pre-s3cret!-post"
    masked = mask(s.config)
    assert masked["sasl.password"] == masked["ssl.key.password"] == "***"
    assert masked["sasl.username"] == "alice"
    assert "s3cret" not in scrub("bad value pre-s3cret!-post and s3cret!", s.config)


def test_missing_environment_variable_is_named_and_no_secret_leaks():
    d = {**BASE, "config": {"sasl.password": "${KAFKA_PASSWORD}"}}
    with pytest.raises(SourceError, match=r"source\.kafka\.config\.sasl\.password: "
                                          r"environment variable KAFKA_PASSWORD is not set"):
        parse_kafka_settings(d, env={})


@pytest.mark.parametrize("bad, message", [
    ({"group_id": "g", "topics": {"predictions": "p"}}, r"bootstrap_servers is required"),
    ({**BASE, "topics": {"labels": "l"}}, r"topics must be a mapping with at least"),
    ({**BASE, "topics": {"predictions": "p", "clicks": "c"}}, r"unknown stream 'clicks'"),
    ({**BASE, "topics": {"predictions": "p", "labels": "p"}}, r"its own topic"),
    ({**BASE, "consume_batch": 0}, r"consume_batch must be an integer in \[1, 1000000\]; got 0"),
    ({**BASE, "consume_timeout": "1s"}, r"consume_timeout must be a number"),
    ({**BASE, "checkpoint_interval": -1}, r"checkpoint_interval must be a number"),
    ({**BASE, "colour": 1}, r"unknown key\(s\) 'colour'"),
    ({**BASE, "close_worker": "yes"}, r"close_worker must be true or false; got 'yes'"),
    ({**BASE, "config": {"enable.auto.commit": True}}, r"enable\.auto\.commit is set by"),
    ({**BASE, "config": {"partition.assignment.strategy": "cooperative-sticky"}},
     r"incremental rebalancing"),
    ({**BASE, "config": {"x": [1]}}, r"config\.x must be a string, number or boolean"),
    (None, r"must be a mapping"),
])
def test_bad_settings_name_the_key_and_the_bound(bad, message):
    with pytest.raises(SourceError, match=message):
        parse_kafka_settings(bad, env={})


def test_lag_metrics_families():
    fams = list(lag_metrics({"lag": {("p", 1): 7, ("p", 0): 3}, "messages": {"p": 10}}))
    lag, total = fams
    assert [(s.labels, s.value) for s in lag.samples] == [
        ({"topic": "p", "partition": "0"}, 3), ({"topic": "p", "partition": "1"}, 7)]
    assert [(s.name, s.value) for s in total.samples] == [("slicewatch_kafka_messages_total", 10)]


def test_close_worker_defaults_to_on_and_can_be_turned_off():
    assert parse_kafka_settings(BASE, env={}).close_worker is True
    assert parse_kafka_settings({**BASE, "close_worker": False}, env={}).close_worker is False


def test_static_membership_by_default_and_can_be_turned_off():
    conf = consumer_config(parse_kafka_settings({**BASE, "instance_id": "fraud-1"}, env={}))
    assert conf["group.instance.id"] == "fraud-1" and conf["enable.partition.eof"] is True
    off = parse_kafka_settings({**BASE, "static_membership": False}, env={})
    assert "group.instance.id" not in consumer_config(off)
    own = parse_kafka_settings({**BASE, "config": {"group.instance.id": "x"}}, env={})
    assert consumer_config(own)["group.instance.id"] == "x"
