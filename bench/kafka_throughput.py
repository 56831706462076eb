"""Kafka throughput: consume + orjson.loads vs the full daemon, on the same topic, in one run.

Produces ``--records`` realistic records (20 features, ~650 bytes each) to a fresh topic, then
measures (a) a consumer that only consumes and parses each message with ``orjson.loads``
(the practical limit of one Python process; not our decoder, whose cost it would hide) and
(b) the full Kafka loop of ``monitor.runtime.kafka_run`` (10 slice rules including a
cross, binary metrics, drift of every feature and the score in every slice against a stored
reference profile, checkpoints every 5 s), made as ``slicewatch run`` makes it: checkpoint
writes in a background thread, window-close drift tests in the close worker process (closes
still in the worker when the last record is consumed are waited for inside the timing).
Prints both rates and their ratio.

Event time advances ``--rate`` records per second (default 2 000/s, a busy production model:
5-minute windows of 600k records); drift tests run at every window close, so a lower rate
means more closes per record (``--rate 200`` for 60k-record windows).

    scripts/services start && source .services/env
    .venv/bin/python bench/kafka_throughput.py --records 2000000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import orjson
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.ingest.kafka import KafkaSource, consumer_config, parse_kafka_settings
from monitor.runtime.baseline import build_baselines
from monitor.runtime.daemon import Daemon
from monitor.runtime.kafka_run import consume, feature_join_of
from monitor.state.checkpoint import Checkpoint
from slices.load import load_spec

NUMERIC = [f"x{i}" for i in range(16)]
UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile"
CATEGORICAL = {"country": ["US", "CA", "DE", "FR", "GB", "BR", "IN", "JP"],
               "device": ["ios", "android", "web"], "channel": ["app", "site", "partner"],
               "plan": ["free", "pro", "team", "enterprise"]}

SPEC = """
version: 1
source:
  type: kafka
  kafka:
    bootstrap_servers: {bootstrap}
    group_id: bench-full-{topic}
    topics: {{predictions: {topic}}}
    checkpoint_interval: 5
checkpoint: {checkpoint}
server: {{listen: "127.0.0.1:0"}}
models:
  - name: fraud
    task: binary
    window: 5m
    allowed_lateness: 1m
    metrics: [count, score_mean, positive_rate, accuracy, precision, recall, f1, roc_auc,
              log_loss, brier]
    features:
{features}
    drift: {{enabled: true, {drift}}}
    slices:
      - overall: true
      - feature_keys: [country]
      - feature_keys: [device]
      - feature_keys: [channel]
      - feature_keys: [plan]
      - feature_keys: [country, device]
      - buckets: {{x0: [0, 1, 2, 5]}}
      - buckets: {{x1: [-1, 0, 1]}}
      - where: 'x2 > 1 and country in ("US", "CA")'
        name: big_na
      - tags: [new_user, returning]
"""


RATE = 2000.0  # event-time records per second
T0 = 1_780_000_000.0


def make_records(n: int, seed: int = 0, rate: float = RATE, t0: float = T0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    times = t0 + np.arange(n) / rate
    score = rng.random(n)
    label = (rng.random(n) < score).astype(int)
    num = rng.normal(1.0, 1.0, (n, len(NUMERIC))).round(6)
    cats = {k: rng.choice(v, n) for k, v in CATEGORICAL.items()}
    tags = rng.choice(["new_user", "returning"], n)
    out = []
    for i in range(n):
        feats = {name: float(num[i, j]) for j, name in enumerate(NUMERIC)}
        feats.update({k: str(c[i]) for k, c in cats.items()})
        out.append(orjson.dumps({
            "model": "fraud", "model_version": "v7", "prediction_id": f"pred-{seed}-{i:012d}",
            "timestamp": float(times[i]), "prediction": {"score": float(score[i])},
            "label": int(label[i]), "tags": [str(tags[i])], "outcome": "ok",
            "features": feats, "ctx": {"request_id": uuid.UUID(int=i).hex, "ua": UA}}))
    return out


FEATURES = "\n".join([f"      {f}: numeric" for f in NUMERIC]
                     + [f"      {f}: categorical" for f in CATEGORICAL])


def reference_profile(spec_text: str, tmp: Path, records: int = 200_000) -> Path:
    """A stored reference profile (``slicewatch baseline build``'s code) from ``records``
    records of another seed and an earlier day, per slice like the spec asks."""
    ref_lines = make_records(records, seed=1, t0=T0 - 86_400)
    data = tmp / "reference.jsonl"
    data.write_bytes(b"\n".join(ref_lines) + b"\n")
    spec_path = tmp / "baseline-spec.yaml"
    spec_path.write_text(spec_text.replace("{drift}", "rolling_windows: 3"))
    out = tmp / "profile.json"
    build_baselines(load_spec(str(spec_path)), [str(data)], str(out))
    return out


def produce(bootstrap: str, topic: str, lines: list[bytes], partitions: int) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.size": 1 << 20,
                  "compression.type": "lz4", "queue.buffering.max.kbytes": 1 << 20})
    for i, line in enumerate(lines):
        while True:
            try:
                p.produce(topic, line, partition=i % partitions)
                break
            except BufferError:
                p.poll(0.05)
        if i % 20000 == 0:
            p.poll(0)
    p.flush(120)


def decode_only(bootstrap: str, topic: str, spec, n: int, rep: int = 0) -> float:
    """(a): consume + ``orjson.loads`` of each message, nothing else; records per second."""
    settings = parse_kafka_settings({**spec.source.kafka,
                                     "group_id": f"bench-decode-{rep}-{topic}"})
    c = Consumer(consumer_config(settings))
    c.subscribe([topic])
    got, t0 = 0, None
    while got < n:
        msgs = c.consume(10000, 1.0)
        if not msgs:
            continue
        t0 = t0 or time.perf_counter()
        for m in msgs:
            if m.error():  # end-of-partition events (consumer_config asks for them)
                continue
            orjson.loads(m.value())
            got += 1
    rate = got / (time.perf_counter() - t0)
    c.close()
    return rate


def full_daemon(spec, n: int, rep: int = 0) -> tuple[float, int]:
    """(b): the Kafka loop of monitor.runtime.kafka_run (with checkpoints); records per second."""
    settings = parse_kafka_settings({**spec.source.kafka,
                                     "group_id": f"{spec.source.kafka['group_id']}-{rep}"})
    cp = Checkpoint(f"{spec.checkpoint}.{rep}", owner="bench")
    daemon = Daemon(spec, close_in_worker=settings.close_worker,  # as kafka_run does
                    feature_join=feature_join_of(spec, settings))
    source = KafkaSource(settings, cp, state=daemon.checkpoint_state, restore=lambda s: None,
                         stop=daemon.stop)
    assert source.start()
    done = {"t0": None}
    poll = source.poll

    def counted_poll():  # the clock starts at the first message; stop after n
        batch = poll()
        if done["t0"] is None and batch.count:
            done["t0"] = time.perf_counter()
        if sum(source.messages.values()) >= n:
            daemon.stop.set()
        return batch

    source.poll = counted_poll
    consume(daemon, source)
    daemon.settle()  # closes still in the worker count
    elapsed = time.perf_counter() - done["t0"]
    source.close()
    daemon.close()
    return sum(source.messages.values()) / elapsed, source.saves


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", default=os.environ.get("SLICEWATCH_TEST_KAFKA"))
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of (a) and (b), alternating; the best of each is compared")
    ap.add_argument("--rate", type=float, default=RATE,
                    help="event-time records per second (window size = 300 × rate)")
    args = ap.parse_args()
    if not args.bootstrap:
        sys.exit("no broker: pass --bootstrap or source .services/env")
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    admin.create_topics([NewTopic(topic, args.partitions, 1)])[topic].result(30)
    tmp = Path(tempfile.mkdtemp())
    text = SPEC.format(bootstrap=args.bootstrap, topic=topic, features=FEATURES,
                       checkpoint=tmp / "cp.db", drift="{drift}")
    t = time.perf_counter()
    profile = reference_profile(text, tmp)
    print(f"reference profile from 200,000 records in {time.perf_counter() - t:.0f}s",
          flush=True)
    spec_path = tmp / "spec.yaml"
    spec_path.write_text(text.replace("{drift}", f"profile: {profile}"))
    spec = load_spec(str(spec_path))
    try:
        t = time.perf_counter()
        lines = make_records(args.records, rate=args.rate)
        size = sum(map(len, lines)) / len(lines)
        print(f"generated {len(lines):,} records, {size:.0f} bytes each, {args.rate:,.0f} per "
              f"event-time second ({300 * args.rate:,.0f} per 5m window), "
              f"in {time.perf_counter() - t:.0f}s", flush=True)
        t = time.perf_counter()
        produce(args.bootstrap, topic, lines, args.partitions)
        print(f"produced to {topic} ({args.partitions} partitions) in "
              f"{time.perf_counter() - t:.0f}s", flush=True)
        del lines
        runs_a, runs_b = [], []
        for rep in range(args.repeat):  # alternate, so a slow spell of the machine hits both
            runs_a.append(decode_only(args.bootstrap, topic, spec, args.records, rep))
            print(f"run {rep + 1}: (a) consume + orjson   {runs_a[-1]:,.0f} records/s", flush=True)
            b, saves = full_daemon(spec, args.records, rep)
            runs_b.append(b)
            print(f"run {rep + 1}: (b) full daemon      {b:,.0f} records/s ({saves} checkpoints)",
                  flush=True)
        a, b = max(runs_a), max(runs_b)
        paired = [y / x for x, y in zip(runs_a, runs_b, strict=True)]
        print(f"(a) consume + orjson:  {a:,.0f} records/s (best of {args.repeat})")
        print(f"(b) full daemon:       {b:,.0f} records/s (best of {args.repeat})")
        print(f"ratio b/a: {b / a:.2f} (best over best; target >= 0.7); per run: "
              + ", ".join(f"{r:.2f}" for r in paired)
              + f"; median per run: {statistics.median(paired):.2f}")
    finally:
        admin.delete_topics([topic])


if __name__ == "__main__":
    main()
