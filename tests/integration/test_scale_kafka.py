"""Scale-out on the real broker (issue #14): workers and an evaluator as separate processes,
each in its own working directory (no shared files), on a 6-partition prediction topic with
a co-partitioned label topic. Every window's per-slice results equal those of one in-process
daemon over the same records (counts exactly, float metrics to 1e-12 relative), with and
without ``kill -9``; an evaluator takeover does not notify a firing alert again; a
co-partitioning mismatch is a clear error.

Records: the kill -9 test reads the issue's 600 000 predictions (``KILL_RECORDS``) and their
delayed labels; the others 30 000 (``N``).
"""

from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import orjson
import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from monitor.drift import save_profile
from monitor.ingest.decode import Decoder
from monitor.ingest.source import Chunk
from monitor.outputs.results import read_results, result_record
from monitor.runtime.baseline import profile_for
from monitor.runtime.daemon import Daemon
from slices.load import load_spec, load_spec_text
from tests.integration import test_kafka_source as ks
from tests.wait import DEADLINE, wait_until

PARTS = 6
N = 30_000

SPEC = """
version: 1
source:
  type: kafka
  dead_letter: dead.jsonl
  kafka:
    bootstrap_servers: {bootstrap}
    group_id: {group}
    instance_id: one
    internal_prefix: {prefix}
    topics: {{predictions: {preds}, labels: {labels}}}
    consume_batch: 2000
    consume_timeout: 0.2
    checkpoint_interval: 0.5
    config: {{session.timeout.ms: 6000, heartbeat.interval.ms: 500}}
checkpoint: cp.db
server: {{listen: "127.0.0.1:0"}}
models:
  - name: m
    task: binary
    window: 1m
    allowed_lateness: 1h
    label_delay: 10m
    metrics: [count, labelled_rate, score_mean, positive_rate, accuracy, precision, recall,
              roc_auc, log_loss, brier]
    features: {{country: categorical, device: categorical, amount: numeric}}
    slices:
      - overall: true
      - feature_keys: [country]
      - feature_keys: [country, device]
      - buckets: {{amount: [0, 20, 100, 500]}}
"""


CPU: list[tuple[str, float]] = []  # (directory, CPU seconds) of each process ended
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Proc:
    """One ``slicewatch run --role …`` process in its own directory; output read by a
    thread; killed after the test if still running (tests/conftest.py)."""

    def __init__(self, workdir: Path, spec_text: str, *args: str,
                 files: dict[str, bytes] | None = None):
        """``files``: more files for the directory (its own copies: nothing is shared)."""
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        (workdir / "spec.yaml").write_text(spec_text)
        for name, data in (files or {}).items():
            (workdir / name).write_bytes(data)
        self.proc = subprocess.Popen([*ks.RUN, "-c", "spec.yaml", *args], cwd=workdir,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env={**_env(), "PYTHONPATH": str(ks.REPO)})
        ks.STARTED.append(self.proc)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        with open(self.workdir / "out.log", "a") as keep:  # kept for a failed run
            for line in self.proc.stdout:
                self.lines.append(line)
                keep.write(line)
                keep.flush()

    def log(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, after: int = 0) -> None:
        def seen() -> bool:
            if any(text in x for x in self.lines[after:]):
                return True
            assert self.proc.poll() is None, f"process exited:\n{self.log()}"
            return False

        wait_until(seen, what=f"{text!r} in the output", interval=0.05, detail=self.log)

    def cpu(self) -> float:
        """CPU seconds the process has used so far (0 once it is gone)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def kill(self) -> None:
        CPU.append((self.workdir.name, self.cpu()))
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(DEADLINE)

    def stop(self) -> int:
        CPU.append((self.workdir.name, self.cpu()))
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(DEADLINE)
        assert "Traceback" not in self.log(), self.log()
        return rc


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def partition_of(pid: str) -> int:
    return zlib.crc32(pid.encode()) % PARTS


def split(lines: list[bytes], seed: int) -> tuple[list[bytes], list[bytes]]:
    """About 70 % of the labels go to the label topic (timestamped a minute later), the
    others stay inline."""
    rng = random.Random(seed)
    preds, labels = [], []
    for line in lines:
        rec = orjson.loads(line)
        if rng.random() < 0.7:
            labels.append(orjson.dumps({"prediction_id": rec["prediction_id"],
                                        "label": rec.pop("label"),
                                        "timestamp": rec["timestamp"] + 60}))
        preds.append(orjson.dumps(rec))
    return preds, labels


def produce_keyed(bootstrap: str, topic: str, lines: list[bytes], seconds: float = 0.0) -> None:
    """Keyed by prediction id: the partition is crc32(id) mod 6 on both topics; spread over
    ``seconds`` of wall time."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 10})
    t0 = time.monotonic()
    for i, line in enumerate(lines):
        if seconds and i % 500 == 0:
            ahead = t0 + seconds * i / len(lines) - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        pid = orjson.loads(line)["prediction_id"]
        while True:
            try:
                p.produce(topic, line, pid.encode(), partition=partition_of(pid))
                break
            except BufferError:
                p.poll(0.5)
    assert p.flush(DEADLINE) == 0


def reference(spec_path: Path, preds: list[bytes], labels: list[bytes]) -> dict:
    """One in-process daemon: the predictions, then the labels, then the sentinels."""
    daemon = Daemon(load_spec(str(spec_path)))
    out = []
    for i in range(0, len(preds), 5000):
        out += daemon.process(Chunk("lines", preds[i:i + 5000]))
    out += daemon.process(Chunk("lines", labels, stream="labels"))
    out += daemon.process(Chunk("lines", [ks.sentinel(p) for p in range(PARTS)]))
    return {(r.model, r.version, r.slice, r.window_start): result_record(r) for r in out}


def committed(bootstrap: str, group: str, topics: list[str]) -> int:
    """Offsets the workers' transactions committed, summed over the topics' partitions."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(t, p) for t in topics for p in range(PARTS)],
                          timeout=10)
        return sum(max(tp.offset, 0) for tp in got)
    finally:
        c.close()


def sentinels(bootstrap: str, topic: str) -> None:
    p = Producer({"bootstrap.servers": bootstrap})
    for part in range(PARTS):
        p.produce(topic, ks.sentinel(part), partition=part)
    assert p.flush(DEADLINE) == 0


@pytest.fixture
def setup(tmp_path, kafka_bootstrap, kafka_topic, kafka_admin):
    preds = kafka_topic("preds", partitions=PARTS)
    labels = kafka_topic("labels", partitions=PARTS)
    group = f"g-{preds}"
    prefix = f"i-{preds}"
    text = SPEC.format(bootstrap=kafka_bootstrap, group=group, prefix=prefix, preds=preds,
                       labels=labels)
    yield tmp_path, text, preds, labels, group
    kafka_admin.delete_topics([f"{prefix}-{s}" for s in ("partials", "worker-state",
                                                         "evaluator")])


SESSION_TIMEOUT = 6.0  # config session.timeout.ms of the spec



def merged_results(results, want: dict) -> dict:
    """The evaluators' results files as one ``{key: result}`` (a window closed again after a
    takeover must repeat the same values), checked equal to ``want`` on its keys."""
    got: dict = {}
    for path in results:
        for key, r in read_results(str(path)).items():
            if key in got:
                ks.assert_same_results({key: r}, {key: got[key]})
            got[key] = r
    got = {k: v for k, v in got.items() if k in want}
    ks.assert_same_results(got, want)
    return got

def run_scaled(setup, kafka_bootstrap, *, workers: int, churn: bool = False, extra: str = "",
               after=None) -> None:
    """``churn``: a worker joins, then one leaves (the kill -9 test: :func:`test_kill_9_\
    workers_and_the_evaluator_loses_and_doubles_nothing`)."""
    tmp_path, text, preds_topic, labels_topic, group = setup
    text += extra
    (tmp_path / "ref.yaml").write_text(text)
    preds, labels = split(ks.records(N, seed=11), seed=12)
    want = reference(tmp_path / "ref.yaml", preds, labels)
    procs = {f"w{i}": Proc(tmp_path / f"w{i}", text, "--role", "worker", "--instance-id",
                           f"w{i}", "-q") for i in range(workers)}
    ev_dir = tmp_path / "ev"
    evaluators = [Proc(ev_dir, text, "--role", "evaluator", "--results", "results.jsonl",
                       "-q")]
    for p in procs.values():
        p.wait_for("kafka: assigned")
    evaluators[0].wait_for("evaluator active")
    spread = 12.0 if churn else 0.0  # the churn comes while records flow

    def feed() -> None:
        produce_keyed(kafka_bootstrap, preds_topic, preds, spread)
        produce_keyed(kafka_bootstrap, labels_topic, labels, spread / 2)

    feeder = threading.Thread(target=feed)
    feeder.start()
    total = len(preds) + len(labels)
    results = [ev_dir / "results.jsonl"]
    if churn:  # when the group's commits pass a quarter, then half of the messages
        done = Committed(kafka_bootstrap, group, [preds_topic, labels_topic])
        try:
            wait_until(lambda: done() >= total / 4, what="a quarter committed")
            procs["w9"] = Proc(tmp_path / "w9", text, "--role", "worker", "--instance-id",
                               "w9", "-q")  # joins: every member checkpoints on the revoke
            procs["w9"].wait_for("kafka: assigned")
            wait_until(lambda: done() >= total / 2, what="half committed")
        finally:
            done.close()
        gone = procs.pop("w0")
        assert gone.stop() == 0  # leaves for good (SIGTERM: it checkpoints, then leaves)
    feeder.join(DEADLINE)
    assert feeder.is_alive() is False
    logs = [*procs.values(), *evaluators]
    wait_until(lambda: committed(kafka_bootstrap, group, [preds_topic, labels_topic]) == total,
               what="every record consumed and committed",
               detail=lambda: "".join(p.log() for p in logs))
    sentinels(kafka_bootstrap, preds_topic)
    ks.wait_results(results, set(want), logs=logs)
    if after is not None:
        after()
    for p in procs.values():
        assert p.stop() == 0
    assert evaluators[-1].stop() == 0
    got = merged_results(results, want)
    overall = [r for r in got.values() if r["slice"] == "overall"]
    assert len(overall) >= 5 and all(r["metrics"]["accuracy"] is not None for r in overall)


def test_a_worker_joins_and_one_leaves_mid_stream(setup, kafka_bootstrap):
    run_scaled(setup, kafka_bootstrap, workers=2, churn=True)


# ------------------------------------------------------------- kill -9 at the scale
KILL_RECORDS = 600_000  # predictions of the kill -9 test (the issue's); ~70 % labelled later
KILL_AT = (0.08, 0.2, 0.32, 0.44, 0.56, 0.68)  # of the messages committed: one kill each
KILL_WHO = ("worker", "evaluator", "worker", "worker", "evaluator", "worker")
KILL_BATCH = 5000  # consume_batch (the other tests: 2000)
KILL_CHECKPOINT = 5.0  # s, checkpoint_interval (the other tests: 0.5): fewer, larger partials
CONSUMED = 600.0  # s: every message of the kill test committed (a slow, loaded machine)

ALERTS = """
alerts:
  - name: busy_window
    model: m
    metric: count
    threshold: {{upper: 10}}
    slices: {slices}
    severity: warning
receivers:
  - {{name: hook, type: webhook, url: "{url}"}}
route:
  receiver: hook
  group_by: [alertname, slice]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
"""

KILL_DRIFT = "    drift: {enabled: true, profile: profile.json}\n"

REF_SOURCE = """version: 1
server: {listen: "127.0.0.1:0"}
source:
  type: file
  path: preds.jsonl
  labels: labels.jsonl
  dead_letter: dead.jsonl
"""


def big_stream(n: int, seed: int = 41) -> tuple[list[tuple[bytes, int, bytes]],
                                                 list[tuple[bytes, int, bytes]]]:
    """``n`` predictions over five minutes of event time (as ``ks.records``) and, for ~70 %
    of them, a label record a minute later on the label topic (the others inline), as
    ``(key, partition, JSON line)``: formatted from integers (fast: no float repr), keyed by
    prediction id, partition crc32(id) mod 6 on both topics."""
    rng = np.random.default_rng(seed)
    ms = np.sort(rng.integers(0, int(ks.SPAN * 1000), n)).tolist()
    score = rng.integers(0, 10_000, n)
    label = (rng.random(n) < 0.2 + 0.6 * score / 10_000).astype(int).tolist()
    country = rng.choice(["US", "CA", "DE", "FR"], n).tolist()
    device = rng.choice(["ios", "android", "web"], n).tolist()
    cents = (rng.gamma(2.0, 40.0, n) * 100).astype(np.int64).tolist()
    delayed = (rng.random(n) < 0.7).tolist()
    t0 = int(ks.T0)
    preds, labels = [], []
    for i, (m, s, y, c, d, a, late) in enumerate(zip(ms, score.tolist(), label, country,
                                                     device, cents, delayed, strict=True)):
        sec, frac = divmod(m, 1000)
        key = f"p{i}".encode()
        part = zlib.crc32(key) % PARTS
        head = (f'{{"model":"m","model_version":"v1","prediction_id":"p{i}","timestamp":'
                f'{t0 + sec}.{frac:03d},"prediction":{{"score":0.{s:04d}}},"features":'
                f'{{"country":"{c}","device":"{d}","amount":{a // 100}.{a % 100:02d}}}')
        if late:
            preds.append((key, part, f"{head}}}".encode()))
            labels.append((key, part, f'{{"prediction_id":"p{i}","label":{y},"timestamp":'
                                      f'{t0 + 60 + sec}.{frac:03d}}}'.encode()))
        else:
            preds.append((key, part, f'{head},"label":{y}}}'.encode()))
    return preds, labels


def produce_fast(bootstrap: str, batches: list[tuple[str, list[tuple[bytes, int, bytes]]]]
                 ) -> None:
    """Each ``(topic, messages)`` in turn, pre-encoded, with ``produce_batch``."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20,
                  "queue.buffering.max.messages": 1_000_000,
                  "queue.buffering.max.kbytes": 1 << 20})
    for topic, messages in batches:
        todo = [{"key": k, "partition": part, "value": v} for k, part, v in messages]
        while todo:
            if p.produce_batch(topic, todo) == len(todo):
                break
            todo = [{k: m[k] for k in ("key", "partition", "value")} for m in todo
                    if "_error" in m]  # the local queue was full: let it drain
            p.poll(0.5)
        p.poll(0)
    assert p.flush(DEADLINE) == 0


class Committed:
    """The offsets the workers' transactions committed, summed over the topics'
    partitions; one consumer (not a member of the group) asked again and again."""

    def __init__(self, bootstrap: str, group: str, topics: list[str]):
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                                  "enable.auto.commit": False,
                                  "isolation.level": "read_committed"})
        self.asked = [TopicPartition(t, p) for t in topics for p in range(PARTS)]

    def __call__(self) -> int:
        try:
            got = self.consumer.committed(self.asked, timeout=10)
        except KafkaException as exc:
            if exc.args[0].retriable():
                return -1
            raise
        return sum(max(tp.offset, 0) for tp in got)

    def close(self) -> None:
        self.consumer.close()


STATUS = ("evaluator active", "evaluator standing by")


def status(p: Proc, after: int = 0) -> str | None:
    """The evaluator's last word on its role since line ``after``: active or standing by."""
    said = [s for line in p.lines[after:] for s in STATUS if s in line]
    return said[-1] if said else None


def kill_the_active_evaluator(evaluators: dict[str, Proc], start) -> float:
    """Kill -9 the active evaluator once the group has settled (one active, the other
    standing by; a standby is started first if there is none); the standby takes over; the
    killed one is restarted (its own directory again) as the next standby. Returns the
    takeover time (kill to "evaluator active")."""
    if len(evaluators) == 1:
        evaluators["ev-b"] = start("ev-b")

    def settled() -> str | None:
        said = {n: status(p) for n, p in evaluators.items()}
        active = [n for n, s in said.items() if s == STATUS[0]]
        return active[0] if len(active) == 1 and None not in said.values() else None

    active = wait_until(settled, what="one evaluator active, one standing by",
                        detail=lambda: "".join(p.log() for p in evaluators.values()))
    (standby,) = (p for n, p in evaluators.items() if n != active)
    after = len(standby.lines)
    evaluators.pop(active).kill()
    killed_at = time.monotonic()
    standby.wait_for("evaluator active", after)
    takeover = time.monotonic() - killed_at
    evaluators[active] = start(active)  # restarted: the next standby
    evaluators[active].wait_for("evaluator on ")
    return takeover


def test_kill_9_workers_and_the_evaluator_loses_and_doubles_nothing(setup, kafka_bootstrap):
    """The issue's test: 3 workers + 1 evaluator on 6 partitions, ``KILL_RECORDS``
    predictions and their labels. While they are consumed, kill -9 a random worker four
    times (restarted at once, same directory and --instance-id) and the active evaluator
    twice (a standby in another directory takes over; the killed one is restarted as the
    next standby); each kill when the group's committed offsets pass a mark. Every window's
    per-slice results equal one process's file replay of the same records (run meanwhile
    in its own directory), and a local webhook receiver gets each alert once."""
    from monitor.runtime.demo import DemoReceiver

    tmp_path, text, preds_topic, labels_topic, group = setup
    CPU.clear()
    me0, kids0 = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                      resource.RUSAGE_CHILDREN))
    sample = [v for _k, _p, v in big_stream(20_000, seed=43)[0]]  # drift's reference
    batch, _ = Decoder(load_spec_text(text).schema, default_model="m").decode_lines(sample)
    save_profile(profile_for(load_spec_text(text).models[0], batch, source="test"),
                 tmp_path / "profile.json")
    files = {"profile.json": (tmp_path / "profile.json").read_bytes()}
    receiver = DemoReceiver().start()
    text = text.replace("    label_delay: 10m\n", "    label_delay: 10m\n" + KILL_DRIFT)
    text = text.replace("consume_batch: 2000", f"consume_batch: {KILL_BATCH}").replace(
        "checkpoint_interval: 0.5", f"checkpoint_interval: {KILL_CHECKPOINT}")
    text += ALERTS.format(url=receiver.url, slices='[overall, "country=*"]')
    workers = {f"w{i}": Proc(tmp_path / f"w{i}", text, "--role", "worker", "--instance-id",
                             f"w{i}", "-q", files=files) for i in range(3)}

    def evaluator(name: str) -> Proc:
        return Proc(tmp_path / name, text, "--role", "evaluator", "--results",
                    "results.jsonl", "-q", files=files)

    evaluators = {"ev-a": evaluator("ev-a")}
    t0 = time.monotonic()
    preds, labels = big_stream(KILL_RECORDS)  # while the processes start
    made = time.monotonic() - t0
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    (ref_dir / "profile.json").write_bytes(files["profile.json"])
    (ref_dir / "preds.jsonl").write_bytes(b"\n".join(v for _k, _p, v in preds) + b"\n")
    (ref_dir / "labels.jsonl").write_bytes(b"\n".join(v for _k, _p, v in labels) + b"\n")
    (ref_dir / "ref.yaml").write_text(REF_SOURCE + text[text.index("models:"):
                                                        text.index("alerts:")])
    with open(ref_dir / "out.log", "wb") as out:
        ref = subprocess.Popen([*ks.RUN, "-c", "ref.yaml", "--results", "results.jsonl",
                                "-q"], cwd=ref_dir, stdout=out, stderr=subprocess.STDOUT,
                               env={**_env(), "PYTHONPATH": str(ks.REPO)})
    ks.STARTED.append(ref)  # one process reading the files, while the scaled run goes on
    for p in workers.values():
        p.wait_for("kafka: assigned")
    evaluators["ev-a"].wait_for("evaluator active")
    chunk, j = 50_000, 0  # predictions, then their labels: read soon after, often first
    plan = []
    for i in range(0, len(preds), chunk):
        k = j
        while k < len(labels) and int(labels[k][0][1:]) < i + chunk:
            k += 1
        plan += [(preds_topic, preds[i:i + chunk]), (labels_topic, labels[j:k])]
        j = k
    total = len(preds) + len(labels)
    feeder = threading.Thread(target=produce_fast, args=(kafka_bootstrap, plan))
    t1 = time.monotonic()
    feeder.start()
    done = Committed(kafka_bootstrap, group, [preds_topic, labels_topic])
    logs = lambda: "".join(p.log() for p in [*workers.values(), *evaluators.values()])  # noqa: E731
    rng = random.Random(5)
    takeovers = []
    try:
        for mark, who in zip(KILL_AT, KILL_WHO, strict=True):
            wait_until(lambda m=mark: done() >= m * total, CONSUMED,
                       what=f"{mark:.0%} of the messages committed", detail=logs)
            if who == "evaluator":
                takeovers.append(kill_the_active_evaluator(evaluators, evaluator))
                continue
            name = rng.choice(sorted(workers))
            workers[name].kill()
            workers[name] = Proc(tmp_path / name, text, "--role", "worker", "--instance-id",
                                 name, "-q", files=files)
            workers[name].wait_for("kafka: assigned")
        feeder.join(CONSUMED)
        assert feeder.is_alive() is False
        wait_until(lambda: done() == total, CONSUMED, what="every message committed",
                   detail=logs)
        consumed = time.monotonic() - t1
    finally:
        done.close()
    # the group drops the dead member after the session timeout, then assigns the standby
    assert all(t < 2 * SESSION_TIMEOUT + 5 for t in takeovers), takeovers
    sentinels(kafka_bootstrap, preds_topic)
    assert ref.wait(CONSUMED) == 0, (ref_dir / "out.log").read_text()
    want = read_results(str(ref_dir / "results.jsonl"))
    assert len(want) > 100
    results = [tmp_path / n / "results.jsonl" for n in ("ev-a", "ev-b")]
    ks.wait_results(results, set(want), logs=[*workers.values(), *evaluators.values()])
    wait_until(lambda: len({a["labels"]["slice"] for n in receiver.received
                            for a in n.get("alerts", [])}) >= 5,
               what="the five alerts notified")
    for p in workers.values():
        assert p.stop() == 0
    for p in evaluators.values():
        assert p.stop() == 0
    receiver.stop()
    got = merged_results(results, want)
    ks.assert_same_drift(got, want)  # histogram tests: the same; sample tests: same inputs
    sampled = [abs(g["statistic"] - w["statistic"]) for k in want
               for g, w in zip(got[k]["extra"]["drift"], want[k]["extra"]["drift"], strict=True)
               if w["test"] not in ks.HISTOGRAM_TESTS and w["statistic"] is not None]
    assert sampled and max(sampled) < 0.1 and sum(sampled) / len(sampled) < 0.03, sampled
    overall = [r for r in got.values() if r["slice"] == "overall"]
    assert sum(r["count"] for r in overall) == KILL_RECORDS
    assert all(r["metrics"]["labelled_rate"] == 1.0 for r in overall)
    firing = sorted(a["labels"]["slice"] for n in receiver.received
                    for a in n.get("alerts", []) if a["status"] == "firing")
    assert firing == ["country=CA", "country=DE", "country=FR", "country=US", "overall"], \
        receiver.received
    roles: dict[str, float] = {}
    for name, seconds in CPU:
        role = "worker" if name.startswith("w") else "evaluator"
        roles[role] = roles.get(role, 0.0) + seconds
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # every process waited for
    mine = me.ru_utime + me.ru_stime - me0.ru_utime - me0.ru_stime
    waited = kids.ru_utime + kids.ru_stime - kids0.ru_utime - kids0.ru_stime
    print(f"kill test CPU s: workers {roles['worker']:.1f}, evaluators {roles['evaluator']:.1f}"
          f" ({len(CPU)} processes), test process {mine:.1f}, the reference "
          f"~{waited - sum(roles.values()):.1f}")
    print(f"kill test: {KILL_RECORDS} predictions + {len(labels)} labels made in {made:.1f} s,"
          f" produced and committed (6 kills) in {consumed:.1f} s; takeovers "
          f"{', '.join(f'{t:.1f}' for t in takeovers)} s; {len(sampled)} sample drift tests,"
          f" |D - D_one_process| mean {sum(sampled) / len(sampled):.4f} max {max(sampled):.4f}")



def test_three_workers_and_an_evaluator_equal_one_process_and_notify_an_alert_once(
        setup, kafka_bootstrap):
    """Three workers and an evaluator: every window's per-slice results equal one
    process's (``run_scaled``). Every overall window breaks the rule: the evaluator alone
    judges windows, so the local webhook receiver gets the firing alert once. (One run for
    both: the equality was a test of its own on the same records without the rule.)"""
    from monitor.runtime.demo import DemoReceiver

    receiver = DemoReceiver().start()
    try:
        def notified() -> None:
            wait_until(lambda: receiver.received, what="a notification at the receiver")

        alerts = ALERTS.format(url=receiver.url, slices="[overall]")
        run_scaled(setup, kafka_bootstrap, workers=3, extra=alerts, after=notified)
        firing = [a for note in receiver.received for a in note.get("alerts", [])
                  if a["status"] == "firing"]
        assert len(firing) == 1, receiver.received
        assert firing[0]["labels"]["alertname"] == "busy_window"
        assert firing[0]["labels"]["slice"] == "overall"
    finally:
        receiver.stop()


def test_co_partitioning_mismatch_is_a_clear_error(tmp_path, kafka_bootstrap, kafka_topic):
    preds = kafka_topic("preds", partitions=PARTS)
    labels = kafka_topic("labels", partitions=4)
    text = SPEC.format(bootstrap=kafka_bootstrap, group=f"g-{preds}", prefix=f"i-{preds}",
                       preds=preds, labels=labels)
    w = Proc(tmp_path / "w", text, "--role", "worker", "-q")
    assert w.proc.wait(DEADLINE) == 1
    out = w.log()
    assert f"co-partitioning: the prediction topic {preds} has 6 partitions but {labels} " \
           "(labels) has 4" in out, out
    assert "Traceback" not in out


def closers(bootstrap: str, topic: str, t: float, per_partition: int = 20) -> None:
    """``per_partition`` records at event time ``t`` on every partition: they move every
    partition's watermark (closing the windows before ``t`` - lateness - label delay), and
    their own window breaks the alert rule too (more than 10 records)."""
    p = Producer({"bootstrap.servers": bootstrap})
    for part in range(PARTS):
        for i in range(per_partition):
            p.produce(topic, orjson.dumps({
                "model": "m", "model_version": "v1", "prediction_id": f"c{t}-{part}-{i}",
                "timestamp": t + i / 100, "prediction": {"score": 0.5}, "label": 0,
                "features": {"country": "US", "device": "ios", "amount": 1.0}}),
                partition=part)
    assert p.flush(DEADLINE) == 0


def test_a_takeover_does_not_notify_a_firing_alert_again(setup, kafka_bootstrap):
    """The alert fires and is notified by evaluator A; A is killed before the next window;
    B (another directory: another --alerts-db) takes over from the Kafka state, closes the
    next window (still breaking the rule) and notifies nothing: one notification in all."""
    from monitor.runtime.demo import DemoReceiver
    from monitor.runtime.kafka_run import settings_for
    from monitor.scale.kafka_roles import EVALUATOR_KEY, internal_topics, prefix_of, read_latest
    from monitor.state.encoding import decode_state

    tmp_path, text, preds_topic, _labels, _group = setup
    receiver = DemoReceiver().start()
    try:
        text += ALERTS.format(url=receiver.url, slices="[overall]")
        (tmp_path / "spec.yaml").write_text(text)
        settings = settings_for(load_spec(str(tmp_path / "spec.yaml")))
        state_topic = internal_topics(prefix_of(settings))["evaluator"]
        worker = Proc(tmp_path / "w0", text, "--role", "worker", "--instance-id", "w0", "-q")
        a = Proc(tmp_path / "ev-a", text, "--role", "evaluator", "--results", "results.jsonl",
                 "-q")
        worker.wait_for("kafka: assigned")
        a.wait_for("evaluator active")
        produce_keyed(kafka_bootstrap, preds_topic, ks.records(3000, seed=21))
        closers(kafka_bootstrap, preds_topic, ks.T0 + 2 * 3600)  # closes the 5 windows
        wait_until(lambda: [n for n in receiver.received if n.get("status") == "firing"],
                   what="the alert notified by the first evaluator",
                   detail=lambda: a.log() + worker.log())

        def checkpointed() -> bool:
            """A's committed state has the alert firing and nothing left to deliver."""
            blob = read_latest(settings, state_topic).get(EVALUATOR_KEY)
            alerts = decode_state(blob).get("alerts") if blob else None
            return bool(alerts) and not alerts["outbox"] and any(
                (s.get("alert") or {}).get("status") == "firing"
                for s in alerts["engine"]["series"].values())

        wait_until(checkpointed, what="the delivered alert in the evaluator's Kafka state")
        b = Proc(tmp_path / "ev-b", text, "--role", "evaluator", "--results", "results.jsonl",
                 "-q")
        b.wait_for("evaluator on ")
        a.kill()
        b.wait_for("evaluator active")
        closers(kafka_bootstrap, preds_topic, ks.T0 + 4 * 3600)  # closes the next window

        def next_window_closed() -> bool:
            path = tmp_path / "ev-b" / "results.jsonl"
            return path.exists() and any(
                r["slice"] == "overall" and r["metrics"]["count"] == 20 * PARTS
                for r in read_results(str(path)).values())

        wait_until(next_window_closed, what="the next window closed by the new evaluator",
                   detail=lambda: b.log())
        assert b.stop() == 0  # flushes its alert groups and tries a last delivery round
        assert worker.stop() == 0
        firing = [a for note in receiver.received for a in note.get("alerts", [])
                  if a["status"] == "firing"]
        assert len(firing) == 1, receiver.received
        assert len(receiver.received) == 1, receiver.received
    finally:
        receiver.stop()


def test_a_record_whose_processing_raises_does_not_stop_a_worker(setup, kafka_bootstrap,
                                                                monkeypatch):
    """A worker (in process, with a fault injected for one record) on the real broker: the
    partition is sought back to its last checkpoint, the record at fault is dead-lettered
    as ``processing_error`` and counted in the partials, every other record is folded once
    and all offsets are committed."""
    from monitor.core import pipeline
    from monitor.ingest.deadletter import DeadLetter
    from monitor.runtime.kafka_run import settings_for
    from monitor.scale.kafka_roles import Worker, internal_topics, prefix_of
    from monitor.scale.partials import decode_partial

    real = pipeline.ModelPipeline._accumulate

    def accumulate(self, batch, starts, **kw):
        real(self, batch, starts, **kw)
        if any(str(x) == "boom" for x in batch.id):
            raise RuntimeError("injected fault")

    monkeypatch.setattr(pipeline.ModelPipeline, "_accumulate", accumulate)
    tmp_path, text, preds_topic, _labels, group = setup
    (tmp_path / "spec.yaml").write_text(text)
    spec = load_spec(str(tmp_path / "spec.yaml"))
    settings = settings_for(spec)
    lines = ks.records(3000, seed=31)
    rec = orjson.loads(lines[1700])
    rec["prediction_id"] = "boom"
    lines[1700] = orjson.dumps(rec)
    stop = threading.Event()
    dead = DeadLetter(str(tmp_path / "dead.jsonl"))
    worker = Worker(spec, settings, dead, stop)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        produce_keyed(kafka_bootstrap, preds_topic, lines[:1000])
        wait_until(lambda: committed(kafka_bootstrap, group, [preds_topic]) == 1000,
                   what="a first checkpoint")
        produce_keyed(kafka_bootstrap, preds_topic, lines[1000:])
        wait_until(lambda: committed(kafka_bootstrap, group, [preds_topic]) == len(lines),
                   what="every record consumed and committed past the one at fault")
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(DEADLINE)
        dead.close()
    assert worker.isolated >= 1
    rows = [orjson.loads(x) for x in (tmp_path / "dead.jsonl").read_bytes().splitlines()]
    ids = [r["record"] if isinstance(r["record"], dict) else orjson.loads(r["record"])
           for r in rows]
    assert [(r["reason"], i["prediction_id"]) for r, i in zip(rows, ids, strict=True)] == \
        [("processing_error", "boom")], rows
    c = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"read-{group}",
                  "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                  "enable.partition.eof": True})
    partials_topic = internal_topics(prefix_of(settings))["partials"]
    c.assign([TopicPartition(partials_topic, 0, 0)])
    records = bad = 0
    try:
        while True:
            m = c.poll(10)
            assert m is not None, "the partials topic's end not reached"
            if m.error() is not None:
                break  # end of the partition
            p = decode_partial(m.value())
            records += sum(p.counts.get("records", {}).values())
            bad += p.counts.get("bad", {}).get("processing_error", 0)
    finally:
        c.close()
    assert (records, bad) == (len(lines) - 1, 1)
