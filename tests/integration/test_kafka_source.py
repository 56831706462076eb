"""The Kafka source against the real broker: exactly-once under kill -9, two instances
handing partitions over, a broker outage, the dead-letter topic, missing topic / broker.

Every run's closed-window results are compared with an uninterrupted in-process run of the
same daemon over the same records (counts exactly, float metrics to 1e-12 relative: float
sums depend on where batches cut). Windows close when sentinel records far in the future
arrive on every partition, produced once everything else has been consumed.
"""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import pytest
import requests
from confluent_kafka import Consumer, Producer
from prometheus_client.parser import text_string_to_metric_families

from monitor.drift import save_profile
from monitor.ingest.decode import Decoder
from monitor.ingest.source import Chunk
from monitor.outputs.results import read_results, result_record
from monitor.runtime.baseline import profile_for
from monitor.runtime.daemon import Daemon
from monitor.runtime.kafka_run import drain_instance
from monitor.state.checkpoint import Checkpoint
from slices.load import load_spec
from tests.wait import DEADLINE, HTTP_TIMEOUT, wait_until

REPO = Path(__file__).resolve().parents[2]
RUN = [sys.executable, "-m", "monitor.cli", "run"]
T0 = 1_700_000_000.0
SPAN = 300.0  # five 1-minute windows
PARTITIONS = 4

SPEC = """
version: 1
source:
  type: kafka
  dead_letter: {dead}
  kafka:
    bootstrap_servers: {bootstrap}
    group_id: {group}
    instance_id: {instance}
    topics: {{predictions: {topic}}}
    {dlq}
    consume_batch: 2000
    consume_timeout: 0.2
    checkpoint_interval: 0.5
    config: {{session.timeout.ms: 6000, heartbeat.interval.ms: 500}}
checkpoint: {checkpoint}
server: {{listen: "127.0.0.1:0"}}
models:
  - name: m
    task: binary
    window: 1m
    allowed_lateness: 1h
    metrics: [count, score_mean, positive_rate, accuracy, precision, recall, roc_auc,
              log_loss, brier]
    features: {{country: categorical, device: categorical, amount: numeric}}
    slices:
      - overall: true
      - feature_keys: [country]
      - feature_keys: [country, device]
      - buckets: {{amount: [0, 20, 100, 500]}}
"""


def write_spec(tmp_path: Path, bootstrap: str, topic: str, *, group: str = "g",
               instance: str = "a", dlq: str | None = None) -> Path:
    path = tmp_path / f"spec-{instance}.yaml"
    path.write_text(SPEC.format(bootstrap=bootstrap, topic=topic, group=f"{group}-{topic}",
                                instance=instance, checkpoint=tmp_path / "cp.db",
                                dead=tmp_path / f"dead-{instance}.jsonl",
                                dlq=f"dead_letter_topic: {dlq}" if dlq else ""))
    return path


def records(n: int, seed: int = 0) -> list[bytes]:
    """``n`` predictions over :data:`SPAN` seconds of event time (columns drawn with numpy,
    turned into Python values once: no numpy scalar per record)."""
    rng = np.random.default_rng(seed)
    t = (T0 + np.sort(rng.uniform(0, SPAN, n))).tolist()
    score = rng.random(n)
    label = (rng.random(n) < 0.2 + 0.6 * score).astype(int).tolist()
    country = rng.choice(["US", "CA", "DE", "FR"], n).tolist()
    device = rng.choice(["ios", "android", "web"], n).tolist()
    amount = rng.gamma(2.0, 40.0, n).round(2).tolist()
    return [orjson.dumps({"model": "m", "model_version": "v1", "prediction_id": f"p{i}",
                          "timestamp": ti, "prediction": {"score": si}, "label": yi,
                          "features": {"country": ci, "device": di, "amount": ai}})
            for i, (ti, si, yi, ci, di, ai) in enumerate(zip(
                t, score.tolist(), label, country, device, amount, strict=True))]


def sentinel(p: int) -> bytes:
    return orjson.dumps({"model": "m", "model_version": "v1", "timestamp": T0 + 3 * 3600 + p,
                         "prediction": {"score": 0.5}, "label": 0,
                         "features": {"country": "US", "device": "ios", "amount": 1.0}})


def produce(bootstrap: str, topic: str, lines: list[bytes], *, seconds: float = 0.0,
            start: int = 0, partitions: int = PARTITIONS) -> None:
    """Round-robin over the partitions, spread over ``seconds`` of wall time."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 10})
    t0 = time.monotonic()
    step = max(len(lines) // 50, 1)
    for i, line in enumerate(lines):
        while True:
            try:
                p.produce(topic, line, partition=(start + i) % partitions)
                break
            except BufferError:  # the local queue is full (a slow broker): let it drain
                p.poll(0.5)
        if i % step == 0:
            p.poll(0)
            if seconds:
                ahead = t0 + seconds * i / len(lines) - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
    assert p.flush(DEADLINE) == 0


def reference(spec_path: Path, lines: list[bytes]) -> dict[tuple, dict]:
    """The uninterrupted run: the same daemon over the same records, in-process."""
    daemon = Daemon(load_spec(str(spec_path)))
    out = []
    for i in range(0, len(lines), 5000):
        out += daemon.process(Chunk("lines", lines[i:i + 5000]))
    out += daemon.process(Chunk("lines", [sentinel(p) for p in range(PARTITIONS)]))
    return {(r.model, r.version, r.slice, r.window_start): result_record(r) for r in out}


def assert_same_results(got: dict[tuple, dict], want: dict[tuple, dict]) -> None:
    assert set(got) == set(want)
    for key, w in want.items():
        g = got[key]
        assert g["count"] == w["count"], key
        for name, wv in w["metrics"].items():
            gv = g["metrics"][name]
            if wv is None or (isinstance(wv, float) and math.isnan(wv)):
                assert gv is None or math.isnan(gv), (key, name)
            else:
                assert gv == pytest.approx(wv, rel=1e-12, abs=1e-15), (key, name)


STARTED: list[subprocess.Popen] = []  # killed after each test by tests/conftest.py


def kill_leftovers() -> None:
    """A failed test must not leave its daemons running (any module that uses Daemon_)."""
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(DEADLINE)


class Daemon_:
    """One ``slicewatch run`` process (``python -m monitor.cli run``); stderr read by a thread."""

    def __init__(self, spec: Path, results: Path):
        self.proc = subprocess.Popen([*RUN, "-c", str(spec), "--results", str(results), "-q"],
                                     cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        STARTED.append(self.proc)
        self.lines: list[str] = []
        self.url: str | None = None
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            if "serving http://" in line:
                self.url = line.split("serving ")[1].split("/metrics")[0]

    def log(self) -> str:
        return "".join(self.lines)

    def assignment(self) -> set[str]:
        """The partitions of this daemon's last ``kafka: assigned`` line (none once revoked)."""
        own: set[str] = set()
        for line in list(self.lines):
            if "kafka: assigned " in line:
                rest = line.split("kafka: assigned ", 1)[1].strip()
                own = set() if rest == "nothing" else {x.split("@")[0] for x in rest.split(", ")}
            elif "kafka: revoked " in line:
                own = set()
        return own

    def wait_for(self, text: str, timeout: float = DEADLINE) -> None:
        def seen() -> bool:
            if any(text in x for x in self.lines):
                return True
            assert self.proc.poll() is None, f"daemon exited:\n{self.log()}"
            return False

        wait_until(seen, timeout, what=f"{text!r} in the daemon's output", interval=0.05,
                   detail=self.log)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(DEADLINE)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(DEADLINE)
        self.reader.join(DEADLINE)  # every line read (the pipe closes when the process exits)
        out = self.log()
        assert "Traceback" not in out, out
        return rc


def consumed(db: Path) -> int:
    """Messages consumed as far as the checkpoint knows (next offsets, all partitions)."""
    if not db.exists():
        return 0
    return sum(n for n, _ in Checkpoint(str(db), owner="probe").positions().values())


def saved_seq(db: Path, owner: str = "a") -> int:
    return Checkpoint(str(db), owner=owner).seq if db.exists() else 0


def wait_saved(db: Path, seq: int, d: Daemon_ | None = None) -> None:
    """Until instance a's checkpoint sequence number reaches ``seq`` (``d``: whose log to
    show if it does not)."""
    wait_until(lambda: saved_seq(db) >= seq, what=f"checkpoint #{seq}",
               detail=d.log if d else None)


def owners(db: Path) -> set[str]:
    """The instances owning partitions in the checkpoint."""
    if not db.exists():
        return set()
    return {o for _, o in Checkpoint(str(db), owner="probe").positions().values()}


def wait_consumed(db: Path, total: int, timeout: float = DEADLINE) -> None:
    """Until the checkpointed offsets reach ``total``; fails only when they stop moving for
    ``timeout`` s (a big stream on a loaded machine takes as long as it takes)."""
    progress = {"got": -1, "since": time.monotonic()}

    def done() -> bool:
        got = consumed(db)
        if got != progress["got"]:
            progress.update(got=got, since=time.monotonic())
        assert time.monotonic() - progress["since"] < timeout, \
            f"checkpointed offsets stuck at {got} of {total} for {timeout:g} s"
        return got == total

    wait_until(done, float("inf"), what=f"{total} messages checkpointed")


def wait_checkpointed(db: Path, d: Daemon_) -> None:
    """Until the first checkpoint with offsets is written (so a restart resumes from one)."""
    wait_until(lambda: consumed(db) > 0, what="a first checkpoint", detail=d.log)


def wait_results(paths: list[Path], keys: set, timeout: float = DEADLINE, logs=()) -> None:
    state = {"seen": set()}

    def closed() -> bool:
        state["seen"] = set()
        for p in paths:
            if p.exists():
                state["seen"] |= set(read_results(str(p)))
        return keys <= state["seen"]

    def detail() -> str:
        missing = keys - state["seen"]
        return (f"{len(missing)} missing, e.g. {sorted(missing)[:5]}\n"
                + "".join(line for d in logs for line in d.lines))

    wait_until(closed, timeout, what="windows closed", detail=detail)


# ---------------------------------------------------------------------------------- tests

def test_exactly_once_across_five_kill_9(tmp_path, kafka_bootstrap, kafka_topic):
    n = int(os.environ.get("SLICEWATCH_KAFKA_TEST_RECORDS", "1000000"))
    topic = kafka_topic("preds", partitions=PARTITIONS)
    spec = write_spec(tmp_path, kafka_bootstrap, topic)
    lines = records(n)
    want = reference(spec, lines)
    results = tmp_path / "results.jsonl"
    producer = threading.Thread(target=produce, args=(kafka_bootstrap, topic, lines),
                                kwargs={"seconds": 15.0})
    producer.start()
    rng = random.Random(4)
    kills = 0
    while kills < 5:
        before = saved_seq(tmp_path / "cp.db")
        d = Daemon_(spec, results)
        d.wait_for("kafka: assigned")
        wait_saved(tmp_path / "cp.db", before + 1, d)  # a save to resume from
        time.sleep(rng.uniform(0.2, 2.0))
        d.kill()
        kills += 1
    producer.join()
    d = Daemon_(spec, results)
    d.wait_for("resumed a from checkpoint")
    wait_consumed(tmp_path / "cp.db", n)
    produce(kafka_bootstrap, topic, [sentinel(p) for p in range(PARTITIONS)])
    wait_results([results], set(want))
    assert d.stop() == 0
    assert_same_results(read_results(str(results)), want)
    # every record counted once: the overall slice's counts sum to n
    overall = sum(r["count"] for r in want.values() if r["slice_name"] == "overall")
    assert overall == n


def test_two_instances_split_partitions_and_hand_over(tmp_path, kafka_bootstrap, kafka_topic):
    """a and b split the partitions; a leaves mid-stream and b takes a's partitions at a's
    checkpointed offsets. Each step waits for the one before, never for the wall clock (a
    stream produced on a timer was all consumed by a before b had started on a loaded
    machine, leaving b nothing): the first half is produced once both own partitions and is
    consumed by both; a leaves while the next part is produced; the tail — the last window
    whole — comes after a left, so b alone has it."""
    n = 120_000
    topic = kafka_topic("preds", partitions=PARTITIONS)
    spec_a = write_spec(tmp_path, kafka_bootstrap, topic, instance="a")
    spec_b = write_spec(tmp_path, kafka_bootstrap, topic, instance="b")
    lines = records(n, seed=1)
    want = reference(spec_a, lines)
    last = max(k[3] for k in want)
    half, tail = n // 2, n * 4 // 5
    assert all(orjson.loads(x)["timestamp"] < last for x in lines[:tail])
    res_a, res_b = tmp_path / "res-a.jsonl", tmp_path / "res-b.jsonl"
    a = Daemon_(spec_a, res_a)
    a.wait_for("kafka: assigned")
    b = Daemon_(spec_b, res_b)
    b.wait_for("kafka: assigned")
    db = tmp_path / "cp.db"

    def split() -> bool:
        own_a, own_b = a.assignment(), b.assignment()
        return bool(own_a and own_b) and not own_a & own_b and len(own_a | own_b) == PARTITIONS

    wait_until(split, what="a and b both own partitions", detail=lambda: a.log() + b.log())
    produce(kafka_bootstrap, topic, lines[:half])
    wait_consumed(db, half)  # each partition has records: both instances consumed some
    producer = threading.Thread(target=produce, args=(kafka_bootstrap, topic, lines[half:tail]),
                                kwargs={"seconds": 4.0, "start": half})
    producer.start()
    assert a.stop() == 0  # a leaves mid-stream: b takes its partitions at a's offsets
    producer.join()
    produce(kafka_bootstrap, topic, lines[tail:], start=tail)
    wait_consumed(db, n)
    # a static member that stops keeps its partitions for session.timeout.ms (docs/kafka.md)
    wait_until(lambda: owners(db) == {"b"}, what="b owns every partition",
               detail=lambda: a.log() + b.log())
    produce(kafka_bootstrap, topic, [sentinel(p) for p in range(PARTITIONS)])
    wait_results([res_b], {k for k in want if k[3] == last}, logs=(a, b))
    assert b.stop() == 0
    # the last window came after a left: b's results for it are the whole window's
    assert_same_results({k: r for k, r in read_results(str(res_b)).items() if k[3] == last},
                        {k: w for k, w in want.items() if k[3] == last})
    # a's windows were still open when it left: drain its checkpointed state
    spec = load_spec(str(spec_a))
    drained = drain_instance(spec, "a")
    a_part = {(r.model, r.version, r.slice, r.window_start): r.count for r in drained}
    b_part = {k: r["count"] for k, r in read_results(str(res_b)).items()}
    assert sum(a_part.values()) > 0 and sum(b_part.values()) > 0
    for key, w in want.items():
        assert a_part.get(key, 0) + b_part.get(key, 0) == w["count"], key
    assert Checkpoint(str(db), owner="a").load() is None  # drained state removed


def test_broker_outage_of_ten_seconds_loses_nothing(tmp_path, kafka_bootstrap, kafka_topic,
                                                    kafka_service):
    n = 60_000
    topic = kafka_topic("preds", partitions=PARTITIONS)
    spec = write_spec(tmp_path, kafka_bootstrap, topic)
    lines = records(n, seed=2)
    want = reference(spec, lines)
    results = tmp_path / "results.jsonl"
    d = Daemon_(spec, results)
    produce(kafka_bootstrap, topic, lines[: n // 2])
    wait_consumed(tmp_path / "cp.db", n // 2)
    kafka_service.stop()
    time.sleep(10)
    kafka_service.start()
    produce(kafka_bootstrap, topic, lines[n // 2:], start=n // 2)
    wait_consumed(tmp_path / "cp.db", n)
    produce(kafka_bootstrap, topic, [sentinel(p) for p in range(PARTITIONS)])
    wait_results([results], set(want))
    assert d.stop() == 0
    assert_same_results(read_results(str(results)), want)


def test_poison_messages_go_to_the_dead_letter_topic(tmp_path, kafka_bootstrap, kafka_topic):
    topic = kafka_topic("preds", partitions=1)
    dlq = kafka_topic("dead", partitions=1)
    spec = write_spec(tmp_path, kafka_bootstrap, topic, dlq=dlq)
    good = records(300, seed=3)
    poison = [b"{not json", b'{"model": "m", "prediction": {"score": 0.1}}', b"[1, 2]"]
    p = Producer({"bootstrap.servers": kafka_bootstrap})
    for i, line in enumerate(good):
        if i in (10, 150, 299):
            p.produce(topic, poison[(10, 150, 299).index(i)])
        p.produce(topic, line)
    p.produce(topic, None)  # a tombstone: no value at all
    assert p.flush(DEADLINE) == 0
    d = Daemon_(spec, tmp_path / "results.jsonl")
    wait_consumed(tmp_path / "cp.db", len(good) + 4)  # the partition is never blocked
    c = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"read-{dlq}",
                  "auto.offset.reset": "earliest"})
    c.subscribe([dlq])
    got = []

    def four() -> bool:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append((dict(m.headers()), m.value()))
        return len(got) >= 4

    wait_until(four, what="4 messages on the dead-letter topic", interval=0)
    c.close()
    reasons = sorted(h["slicewatch.reason"].decode() for h, _ in got)
    assert reasons == ["invalid_json", "missing_field:time", "not_an_object", "not_an_object"]
    assert {v for _, v in got} >= {b"{not json"}
    assert all(h["slicewatch.origin"] == topic.encode() for h, _ in got)
    # counted by reason, and consumption is visible in the lag metrics (refreshed once a
    # second from the cached high watermark: wait until it shows the partition caught up)
    def scrape() -> dict | None:
        fams = {f.name: f for f in text_string_to_metric_families(
            requests.get(f"{d.url}/metrics", timeout=HTTP_TIMEOUT).text)}
        lag = list(fams["slicewatch_kafka_consumer_lag"].samples)
        return fams if [s.value for s in lag] == [0.0] else None

    fams = wait_until(scrape, what="consumer lag 0 on /metrics", interval=0.5)
    bad = {s.labels["reason"]: s.value for s in fams["slicewatch_bad_records"].samples
           if s.name.endswith("_total")}
    msgs = [s.value for s in fams["slicewatch_kafka_messages"].samples]
    lag = list(fams["slicewatch_kafka_consumer_lag"].samples)
    assert bad == {"invalid_json": 1, "missing_field:time": 1, "not_an_object": 2}
    assert msgs == [len(good) + 4]
    assert [(s.labels, s.value) for s in lag] == [({"topic": topic, "partition": "0"}, 0.0)]
    assert d.stop() == 0


def test_missing_topic_is_reported_and_retried(tmp_path, kafka_bootstrap, kafka_admin):
    from confluent_kafka.admin import NewTopic

    topic = f"later-{os.getpid()}-{int(time.time())}"
    spec = write_spec(tmp_path, kafka_bootstrap, topic)
    d = Daemon_(spec, tmp_path / "results.jsonl")
    d.wait_for(f"topic(s) '{topic}' do not exist on {kafka_bootstrap}")
    d.wait_for("retrying in 2 s")  # backoff grows
    try:
        kafka_admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(DEADLINE)
        p = Producer({"bootstrap.servers": kafka_bootstrap})
        for line in records(50, seed=5):
            p.produce(topic, line, partition=0)
        assert p.flush(DEADLINE) == 0
        wait_consumed(tmp_path / "cp.db", 50)
        assert d.stop() == 0
    finally:
        kafka_admin.delete_topics([topic])


def test_unreachable_broker_is_reported_and_retried(tmp_path, free_port):
    spec = write_spec(tmp_path, f"127.0.0.1:{free_port()}", "nowhere")
    d = Daemon_(spec, tmp_path / "results.jsonl")
    d.wait_for("cannot reach the brokers at 127.0.0.1:")
    d.wait_for("retrying in 2 s")
    assert d.stop() == 0


# windows close as the stream goes (one partition: records come in event-time order, none is
# late), with drift tests against a stored profile
DRIFT = """    allowed_lateness: 5s
    drift: {{enabled: true, profile: {profile}}}
"""
HISTOGRAM_TESTS = {"ks_binned", "chi2", "linf", "psi", "js", "hellinger"}


def assert_same_drift(got: dict, want: dict) -> None:
    """Same decisions: tests on the histograms to float rounding; tests on the reservoir
    samples (which depend on where batches cut) by their sizes and inputs only."""
    for key, w in want.items():
        gd, wd = got[key].get("extra", {}).get("drift"), w.get("extra", {}).get("drift")
        assert (gd is None) == (wd is None), key
        for g, x in zip(gd or [], wd or [], strict=True):
            for field in ("feature", "test", "gate", "n_reference", "n_current", "reference"):
                assert g[field] == x[field], (key, field)
            if x["test"] in HISTOGRAM_TESTS:
                assert g["status"] == x["status"], key
                assert (g["statistic"] is None) == (x["statistic"] is None), key
                if x["statistic"] is not None:
                    assert g["statistic"] == pytest.approx(x["statistic"], rel=1e-9), key


def _spawned_by(pid: int) -> list[int]:
    """Live processes started by ``multiprocessing`` spawn for parent ``pid``."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if b"--multiprocessing-fork" in cmd and ppid == pid:
                out.append(int(entry.name))
    return out


def test_kill_9_while_window_closes_are_in_the_worker(tmp_path, kafka_bootstrap, kafka_topic):
    """Windows close all along the stream (no lateness) with drift tests in the close worker:
    kill -9 at random moments (a close may be in the worker), restart; the final results —
    drift decisions included — equal an uninterrupted in-process run with inline closes, and
    a killed daemon leaves no worker behind."""
    n = 200_000
    topic = kafka_topic("preds", partitions=1)
    spec = write_spec(tmp_path, kafka_bootstrap, topic)
    profile = tmp_path / "profile.json"
    base = load_spec(str(spec))
    batch, _ = Decoder(base.schema, default_model="m").decode_lines(records(50_000, seed=8))
    save_profile(profile_for(base.models[0], batch, source="test"), profile)
    text = spec.read_text().replace("    allowed_lateness: 1h\n", DRIFT.format(profile=profile))
    spec.write_text(text.replace("consume_batch: 2000", "consume_batch: 500"))
    lines = records(n, seed=7)
    want = reference(spec, lines)
    assert any("drift" in r.get("extra", {}) for r in want.values())
    results = tmp_path / "results.jsonl"
    producer = threading.Thread(target=produce, args=(kafka_bootstrap, topic, lines),
                                kwargs={"seconds": 10.0, "partitions": 1})
    producer.start()
    rng = random.Random(11)
    orphans: list[int] = []
    for i in range(4):
        d = Daemon_(spec, results)
        d.wait_for("kafka: assigned")
        if i == 0:  # the first daemon starts at offset 0 and closes windows: it has a worker
            wait_until(lambda: _spawned_by(d.proc.pid), what="a close worker",  # noqa: B023
                       detail=d.log)
            wait_checkpointed(tmp_path / "cp.db", d)  # a restart resumes from a checkpoint
            time.sleep(rng.uniform(0.0, 1.0))  # a random moment: a close may be in the worker
        else:
            time.sleep(rng.uniform(1.0, 3.0))  # a random moment after the assignment
        workers = _spawned_by(d.proc.pid)
        d.kill()
        orphans += workers
    producer.join()
    d = Daemon_(spec, results)
    d.wait_for("resumed a from checkpoint")
    wait_consumed(tmp_path / "cp.db", n)
    produce(kafka_bootstrap, topic, [sentinel(0)], partitions=1)
    wait_results([results], set(want))
    assert d.stop() == 0
    got = read_results(str(results))
    assert_same_results(got, want)
    assert_same_drift(got, want)
    assert orphans  # some kill came while a daemon had its close worker
    wait_until(lambda: not [p for p in orphans if Path(f"/proc/{p}").exists()],
               what=f"the killed daemons' close workers {orphans} gone")
