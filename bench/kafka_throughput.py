"""Kafka throughput: bare consume + ``orjson.loads`` vs the full daemon, on one topic, in one run.

Produces ``--records`` realistic records (20 features, ~650 bytes each) to a fresh topic, then
measures, alternating, on the same messages:

- (a) a consumer that only consumes and parses each message with ``orjson.loads`` (the
  practical limit of one Python process; not our decoder, whose cost it would hide);
- (b) the full Kafka loop of ``monitor.runtime.kafka_run`` with one slice (``overall``:
  issue 13's case, like ``bench/ingest.py``'s (b)) and (b10) with 10 slice rules including a
  cross; binary metrics, drift of every feature and the score in every slice against a stored
  reference profile, checkpoints every 5 s; made as ``slicewatch run`` makes it (process set
  up like ``slicewatch``'s: single-threaded BLAS, glibc keeping batch memory; checkpoint
  writes in a background thread, window-close drift tests in the close worker process,
  closes still in the worker when the last record is consumed waited for inside the timing).

Each side is timed from its first consumed message to its last, by wall clock and by the
process's CPU seconds (``time.process_time``: every thread, librdkafka's fetch and broker
threads and the decode-ahead thread included, in both (a) and (b)); (b)'s close worker
process is reported apart ("worker CPU": its CPU time when it exits, start-up included).
Prints a table of best-of-``--repeat`` rates and their ratios to (a), by wall and by CPU,
and the ratio of each (b) run to the (a) run just before it.

Event time advances ``--rate`` records per second (default 2 000/s, a busy production model:
5-minute windows of 600k records); drift tests run at every window close, so a lower rate
means more closes per record (``--rate 200`` for 60k-record windows).

    scripts/services start && source .services/env
    .venv/bin/python bench/kafka_throughput.py --records 2000000
    .venv/bin/python bench/kafka_throughput.py --records 300000 --slices 1 --profile 30
    .venv/bin/python bench/kafka_throughput.py --records 300000 --against HEAD~1

``--against REV``: the code base at git revision ``REV`` (``bench/ingest.py``'s
``tree_at``) against the working tree's: each (b) run in a child process importing one tree,
interleaved with (a) (run in this process).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

# SLICEWATCH_BENCH_ROOT: the code base to import (a child of --against runs another tree's)
ROOT = Path(os.environ.get("SLICEWATCH_BENCH_ROOT") or Path(__file__).resolve().parents[1])
sys.path.insert(0, str(ROOT))

if __name__ == "__main__":  # set up as `slicewatch` sets itself up: before numpy loads
    from monitor.cli import keep_batch_memory, lean_arrow_pool, single_threaded_blas

    single_threaded_blas()
    lean_arrow_pool()
    keep_batch_memory()

import numpy as np  # noqa: E402
import orjson  # noqa: E402
from confluent_kafka import Consumer, Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from monitor.ingest.kafka import (  # noqa: E402
    KafkaSource,
    consumer_config,
    parse_kafka_settings,
)
from monitor.runtime.baseline import build_baselines  # noqa: E402
from monitor.runtime.daemon import Daemon  # noqa: E402
from monitor.runtime.kafka_run import consume, feature_join_of  # noqa: E402
from monitor.state.checkpoint import Checkpoint  # noqa: E402
from slices.load import load_spec  # noqa: E402

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


def one_slice(text: str) -> str:
    """The spec with its slice rules replaced by ``overall`` alone."""
    return re.sub(r"    slices:\n(      .*\n)+", "    slices:\n      - overall: true\n", text)


def decode_only(bootstrap: str, topic: str, spec, n: int, rep: int = 0) -> dict:
    """(a): consume + ``orjson.loads`` of each message, nothing else."""
    settings = parse_kafka_settings({**spec.source.kafka,
                                     "group_id": f"bench-decode-{rep}-{topic}"})
    c = Consumer(consumer_config(settings))
    c.subscribe([topic])
    got, t0, cpu0 = 0, None, 0.0
    while got < n:
        msgs = c.consume(10000, 1.0)
        if not msgs:
            continue
        if t0 is None:
            t0, cpu0 = time.perf_counter(), time.process_time()
        for m in msgs:
            if m.error():  # end-of-partition events (consumer_config asks for them)
                continue
            orjson.loads(m.value())
            got += 1
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    c.close()
    return {"records": got, "seconds": seconds, "cpu": cpu, "worker_cpu": 0.0, "saves": 0}


def full_daemon(spec, n: int, rep: str = "0", profile: int = 0) -> dict:
    """(b): the Kafka loop of monitor.runtime.kafka_run (with checkpoints); ``profile``: print
    cProfile's top functions of the loop (this thread's only)."""
    settings = parse_kafka_settings({**spec.source.kafka,
                                     "group_id": f"{spec.source.kafka['group_id']}-{rep}"})
    cp = Checkpoint(f"{spec.checkpoint}.{rep}", owner="bench")
    daemon = Daemon(spec, close_in_worker=settings.close_worker,  # as kafka_run does
                    feature_join=feature_join_of(spec, settings))
    source = KafkaSource(settings, cp, state=daemon.checkpoint_state, restore=lambda s: None,
                         stop=daemon.stop)
    assert source.start()
    done: dict = {"t0": None}
    poll = source.poll

    def counted_poll():  # the clock starts at the first message; stop after n
        batch = poll()
        if done["t0"] is None and batch.count:
            done["t0"], done["cpu0"] = time.perf_counter(), time.process_time()
        if sum(source.messages.values()) >= n:
            daemon.stop.set()
        return batch

    source.poll = counted_poll
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.runcall(consume, daemon, source)
        pstats.Stats(prof).sort_stats("tottime").print_stats(profile)
    else:
        consume(daemon, source)
    daemon.settle()  # closes still in the worker count
    elapsed, cpu = time.perf_counter() - done["t0"], time.process_time() - done["cpu0"]
    source.close()
    daemon.close()  # the close worker exits: its CPU time is the children's now
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    worker = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    return {"records": sum(source.messages.values()), "seconds": elapsed, "cpu": cpu,
            "worker_cpu": worker, "saves": source.saves}


def child_daemon(root: Path, spec_path: Path, n: int, rep: str) -> dict:
    """A (b) run in a child process importing the code base at ``root``."""
    out = subprocess.run([sys.executable, __file__, "--run-child", str(spec_path), str(n), rep],
                         capture_output=True, text=True,
                         env={**os.environ, "SLICEWATCH_BENCH_ROOT": str(root)})
    if out.returncode:
        sys.exit(f"child run at {root} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", default=os.environ.get("SLICEWATCH_TEST_KAFKA"))
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3,
                    help="rounds of (a) and each (b), alternating; the best of each compared")
    ap.add_argument("--rate", type=float, default=RATE,
                    help="event-time records per second (window size = 300 × rate)")
    ap.add_argument("--slices", default="1,10",
                    help="the (b) runs: 1 (overall only) and/or 10 (the 10 slice rules)")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="cProfile one (b) run (the first --slices), print the top N, stop")
    ap.add_argument("--against", metavar="REV",
                    help="the code base at git revision REV (or in directory REV) against "
                         "the working tree's (each (b) run in a child process)")
    ap.add_argument("--run-child", nargs=3, metavar=("SPEC", "N", "REP"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    import pandas  # noqa: F401  (a running daemon has imported it: not in any timing)

    if args.run_child:
        spec_path, n, rep = args.run_child
        print(json.dumps(full_daemon(load_spec(spec_path), int(n), rep)))
        return
    if not args.bootstrap:
        sys.exit("no broker: pass --bootstrap or source .services/env")
    slices = [int(x) for x in args.slices.split(",")]
    if set(slices) - {1, 10}:
        sys.exit("--slices: 1 and/or 10")
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
    spec_paths = {}
    for k in slices:
        spec_paths[k] = tmp / f"spec-{k}.yaml"
        spec_paths[k].write_text((text if k == 10 else one_slice(text))
                                 .replace("{drift}", f"profile: {profile}"))
    specs = {k: load_spec(str(p)) for k, p in spec_paths.items()}
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
        if args.profile:
            full_daemon(specs[slices[0]], args.records, "profile", args.profile)
            return
        compare(args, specs, spec_paths, topic)
    finally:
        admin.delete_topics([topic])


def compare(args, specs: dict, spec_paths: dict, topic: str) -> None:
    """The runs, interleaved, and their table."""
    names = {1: "(b) full daemon, 1 slice", 10: "(b10) full daemon, 10 slice rules"}
    runs = {}
    if args.against:
        from ingest import tree_at  # bench/ is on the path: the script's directory

        old, here = tree_at(args.against), Path(__file__).resolve().parents[1]
    for k in specs:
        if args.against:
            for label, tag, root in ((f"@{args.against}", "old", old), ("now", "now", here)):
                runs[f"{names[k]} {label}"] = (
                    lambda rep, root=root, k=k, tag=tag:
                    child_daemon(root, spec_paths[k], args.records, f"{k}-{tag}-{rep}"))
        else:
            runs[names[k]] = lambda rep, k=k: full_daemon(specs[k], args.records, f"{k}-{rep}")
    bare = "(a) consume + orjson.loads"
    got: dict[str, list[dict]] = {bare: [], **{name: [] for name in runs}}
    for rep in range(args.repeat):  # alternate, so a slow spell of the machine hits every run
        got[bare].append(decode_only(args.bootstrap, topic, next(iter(specs.values())),
                                     args.records, rep))
        print(f"round {rep + 1}: {bare:44} {line(got[bare][-1])}", flush=True)
        for name, run in runs.items():
            got[name].append(run(rep))
            print(f"round {rep + 1}: {name:44} {line(got[name][-1])}", flush=True)
            if got[name][-1]["records"] != args.records:
                sys.exit(f"{name}: {got[name][-1]['records']} records of {args.records}")
    n = args.records
    base = n / min(r["seconds"] for r in got[bare])
    base_cpu = n / min(r["cpu"] for r in got[bare])
    print(f"\nbest of {args.repeat}; CPU: the process's (all threads); worker: the close "
          "worker process's")
    print(f"{'run':44}  {'records/s':>10}  {'/ (a)':>6}  {'CPU rec/s':>10}  {'/ (a)':>6}  "
          f"{'worker CPU s':>12}")
    for name, rs in got.items():
        rate, cpu_rate = n / min(r["seconds"] for r in rs), n / min(r["cpu"] for r in rs)
        print(f"{name:44}  {rate:>10,.0f}  {rate / base:>6.2f}  {cpu_rate:>10,.0f}  "
              f"{cpu_rate / base_cpu:>6.2f}  {min(r['worker_cpu'] for r in rs):>12.2f}")
    for name, rs in got.items():
        if name == bare:
            continue
        wall = [a["seconds"] / b["seconds"] for a, b in zip(got[bare], rs, strict=True)]
        cpu = [a["cpu"] / b["cpu"] for a, b in zip(got[bare], rs, strict=True)]
        print(f"{name}: ratio to the (a) run before it, wall "
              + ", ".join(f"{r:.2f}" for r in wall) + f" (median {statistics.median(wall):.2f})"
              + "; CPU " + ", ".join(f"{r:.2f}" for r in cpu)
              + f" (median {statistics.median(cpu):.2f})")


def line(r: dict) -> str:
    return (f"{r['records'] / r['seconds']:>9,.0f} rec/s  {r['records'] / r['cpu']:>9,.0f} "
            f"rec/CPU-s  worker {r['worker_cpu']:.2f} CPU-s  {r['saves']} checkpoints")


if __name__ == "__main__":
    main()
