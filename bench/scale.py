"""Scale-out (issue #14), in one run: 1 worker vs 2 workers, the evaluator's cost per window,
and the partials' size on the wire.

1. **Workers.** ``--records`` records of the Kafka bench (``bench/kafka_throughput.py``: 20
   features, 10 slice rules, per-slice drift against a stored profile) on a
   ``--partitions`` topic; ``slicewatch run --role worker`` processes, each pinned to one
   core (``os.sched_setaffinity``) and in its own session (its own scheduling group under
   ``sched_autogroup``, as separate services would be), first one alone, then two (fresh
   consumer groups). The
   rate is taken from the group's committed offsets (transactions): from the moment every
   worker owns its partitions after its last rebalance (its stderr says ``assigned``, written
   once its folds are restored; the offsets committed by then are subtracted) until every
   record is committed. Start-up (imports, joining the group, the two workers' initial
   rebalance) is left out; the end is the last transaction (a worker that drains its backlog
   checkpoints at once: docs/scaling.md). Alternated ``--repeat`` times; best of each.
   ``--trace`` runs each worker through ``bench/scale_worker_trace.py`` and prints where its
   time went (consume, fold, checkpoint, rebalance; CPU and run-queue waits).
2. **Evaluator.** The same spec in process: ``--partitions`` partition folds fold
   ``--eval-records`` records (event time at 200/s: 60k-record windows) and checkpoint every
   5 000 records each; their partials, encoded, are decoded and merged by an
   :class:`~monitor.scale.evaluator.Evaluator`; time per window to decode and merge the
   partials and to close (metrics + drift tests), and one daemon over the same records
   (fold and close) for scale.
3. **Partial size.** Bytes of one partition's partial of one full window (encoded, and
   compressed: zlib as a stand-in for the producer's zstd), for the bench spec and for fewer
   slice rules × features.

    scripts/services start && source .services/env
    .venv/bin/python bench/scale.py --records 600000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from kafka_throughput import (
    FEATURES,
    NUMERIC,
    SPEC,
    make_records,
    produce,
    reference_profile,
)

from monitor.ingest.source import Chunk
from monitor.runtime.daemon import Daemon
from monitor.scale.evaluator import Evaluator
from monitor.scale.partials import decode_partial, encode_partial
from monitor.scale.worker import PartitionFold
from slices.load import load_spec, load_spec_text

REPO = Path(__file__).resolve().parents[1]


def committed(watcher: Consumer, topic: str, partitions: int) -> int | None:
    """Records committed by the group of ``watcher`` (a consumer that never joins it); None
    on a retriable error (e.g. the group's coordinator not elected yet)."""
    try:
        got = watcher.committed([TopicPartition(topic, p) for p in range(partitions)],
                                timeout=10)
    except KafkaException as exc:
        if exc.args and exc.args[0].retriable():
            return None
        raise
    return sum(max(tp.offset, 0) for tp in got)


def all_assigned(logs: list[Path], topic: str, partitions: int) -> bool:
    """Whether the workers writing ``logs`` (stderr) together own every partition of
    ``topic``, each its own, after their last rebalance: each one's last ``assigned`` /
    ``revoked`` line is an ``assigned`` (written once its folds are restored)."""
    owned: list[int] = []
    for log in logs:
        last = None
        try:
            text = log.read_text(errors="replace")
        except OSError:
            return False
        for line in text.splitlines():
            if line.startswith(("slicewatch: kafka: assigned", "slicewatch: kafka: revoked")):
                last = line
        if last is None or "revoked" in last:
            return False
        mine = [int(k.rsplit(":", 1)[1]) for k in last.split("assigned ", 1)[1].split(", ")
                if k.rsplit(":", 1)[0] == topic]
        if not mine:
            return False
        owned += mine
    return sorted(owned) == list(range(partitions))


def runq_seconds(pid: int) -> float:
    """Seconds the main thread of ``pid`` spent runnable, waiting for a CPU (schedstat)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def workers_rate(spec_text: str, tmp: Path, bootstrap: str, topic: str, partitions: int,
                 n: int, workers: int, rep: int, checkpoint_interval: float = 5.0,
                 checkpoint_records: int = 200_000, trace: bool = False,
                 broker_pid: int | None = None, uncontended: list | None = None) -> float:
    """Records per second of ``workers`` worker processes, one core each, checkpointing
    (one transaction of partials + offsets) every ``checkpoint_interval`` seconds. Appends
    to ``uncontended`` the rate over the measured time less the run-queue wait of the
    workers' main threads (what other processes on their cores took from them; the
    smallest of the workers' waits, so as not to flatter two workers)."""
    uncontended = uncontended if uncontended is not None else []
    group = f"bench-scale-{workers}-{rep}-{topic}"
    text = spec_text.replace(f"group_id: bench-full-{topic}",
                             f"group_id: {group}\n    internal_prefix: {group}")
    text = text.replace("checkpoint_interval: 5\n",
                        f"checkpoint_interval: {checkpoint_interval:g}\n"
                        f"    checkpoint_records: {checkpoint_records}\n")
    procs, logs = [], []
    spawned = time.perf_counter()
    cores = sorted(os.sched_getaffinity(0))
    for i in range(workers):
        wd = tmp / f"{group}-w{i}"
        wd.mkdir()
        logs.append(wd / "stderr.log")
        (wd / "spec.yaml").write_text(text)
        core = cores[i % len(cores)]
        procs.append(subprocess.Popen(
            [sys.executable, *([str(REPO / "bench" / "scale_worker_trace.py")] if trace
                               else ["-m", "monitor.cli"]),
             "run", "-c", "spec.yaml", "--role", "worker",
             "--instance-id", f"w{i}", "-q"], cwd=wd, stdout=subprocess.DEVNULL,
            stderr=(wd / "stderr.log").open("wb"), env={**os.environ, "PYTHONPATH": str(REPO)},
            # its own session: with sched_autogroup (Linux's default on desktops and this
            # host) the processes of one session share one CPU weight, so two workers
            # started from the bench's session got no more CPU together than one worker
            # alone whenever other sessions kept the cores busy
            start_new_session=True,
            preexec_fn=lambda core=core: os.sched_setaffinity(0, {core})))
    marks: dict[str, tuple[float, int]] = {}
    # one long-lived watcher (a consumer made per poll, as before, takes CPU from the
    # workers, most when they fill both cores)
    watcher = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                        "enable.auto.commit": False})
    try:
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            assert all(p.poll() is None for p in procs), "a worker exited"
            if "first" not in marks and not all_assigned(logs, topic, partitions):
                time.sleep(0.2)
                continue
            got = committed(watcher, topic, partitions)
            if got is None:
                time.sleep(0.2)
                continue
            now = time.perf_counter()
            if "first" not in marks:
                marks["first"] = (now, got)
                load0 = os.getloadavg()[0]
                cpu0 = [cpu_seconds(p.pid) for p in procs]
                runq0 = [runq_seconds(p.pid) for p in procs]
                broker0 = cpu_seconds(broker_pid) if broker_pid else 0.0
            if got >= n:
                marks["last"] = (now, got)
                break
            time.sleep(0.5)
        (t1, n1), (t2, n2) = marks["first"], marks["last"]
        cpu = [cpu_seconds(p.pid) for p in procs]
        runq = [runq_seconds(p.pid) - r0 for p, r0 in zip(procs, runq0, strict=True)]
        broker = (f"; broker {cpu_seconds(broker_pid) - broker0:.1f}" if broker_pid else "")
        print(f"  {workers} worker(s): {n2 - n1:,} records in {t2 - t1:.1f} s (from "
              f"{t1 - spawned:.1f} s to {t2 - spawned:.1f} s after start), load average "
              f"{load0:.1f} -> {os.getloadavg()[0]:.1f}; CPU seconds in the measurement: workers "
              f"{', '.join(f'{c - c0:.1f}' for c, c0 in zip(cpu, cpu0, strict=True))}{broker}; "
              f"workers' main threads runnable but waiting for a CPU: "
              f"{', '.join(f'{r:.1f}' for r in runq)} s; over the whole run: CPU "
              f"{', '.join(f'{c:.1f}' for c in cpu)} s", flush=True)
        uncontended.append((n2 - n1) / (t2 - t1 - min(runq)))
        return (n2 - n1) / (t2 - t1)
    finally:
        watcher.close()
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(120)
        if trace:
            for i, log in enumerate(logs):
                for line in log.read_text(errors="replace").splitlines():
                    if line.startswith("trace "):
                        print(f"    w{i} {line}")


def evaluator_cost(spec, lines: list[bytes], partitions: int) -> dict[str, float]:
    """Per window: merging the partials, closing (metrics + drift); and one daemon's close."""
    folds = [PartitionFold(spec, f"p:{i}") for i in range(partitions)]
    ev = Evaluator(spec, sources=[f"p:{i}" for i in range(partitions)])
    merge_s = close_s = 0.0
    windows = 0
    batch = 5000
    for i in range(0, len(lines), batch * partitions):
        for p, fold in enumerate(folds):
            part = lines[i + p * batch:i + (p + 1) * batch]
            if part:
                fold.process(Chunk("lines", part, partition=f"p:{p}"))
        blobs = [encode_partial(f.take_partial()) for f in folds]
        t = time.perf_counter()
        for blob in blobs:  # as the evaluator gets them: bytes, decoded then merged
            ev.add(decode_partial(blob))
        merge_s += time.perf_counter() - t
        t = time.perf_counter()
        windows += len({(r.model, r.window_start) for r in ev.advance()})
        close_s += time.perf_counter() - t
    daemon = Daemon(spec)
    t = time.perf_counter()
    single = 0
    for i in range(0, len(lines), batch):
        single += len({r.window_start for r in daemon.process(Chunk("lines",
                                                                    lines[i:i + batch]))})
    single_s = time.perf_counter() - t
    return {"windows": windows, "merge": merge_s / max(windows, 1),
            "close": close_s / max(windows, 1), "single_total": single_s,
            "single_windows": single}


def partial_bytes(spec, lines: list[bytes], per_checkpoint: int) -> tuple[int, int, int]:
    """Bytes of one partition's partials of one full window: (one partial for the window:
    encoded, compressed; the sum of the partials of checkpoints every ``per_checkpoint``
    records, compressed). zlib level 6 stands in for the producer's zstd (not importable
    here)."""
    import zlib

    fold = PartitionFold(spec, "p:0")
    fold.process(Chunk("lines", lines, partition="p:0"))
    blob = encode_partial(fold.take_partial())
    fold = PartitionFold(spec, "p:0")
    total = 0
    for i in range(0, len(lines), per_checkpoint):
        fold.process(Chunk("lines", lines[i:i + per_checkpoint], partition="p:0"))
        total += len(zlib.compress(encode_partial(fold.take_partial()), 6))
    return len(blob), len(zlib.compress(blob, 6)), total


def shrunk(text: str, slices: int, features: int) -> str:
    """The bench spec with its first ``slices`` slice rules and ``features`` features."""
    head, _, rules = text.partition("    slices:\n")
    kept = []
    for block in rules.split("\n      - ")[:slices]:
        kept.append(block.removeprefix("      - "))
    cats = ["country", "device", "channel", "plan"]
    names = [*NUMERIC[:max(features - 4, 0)], *cats]
    feats = "\n".join(f"      {f}: {'categorical' if f in cats else 'numeric'}"
                      for f in names[:features])
    drift = head.split("    drift: {")[1]
    head = head.split("    features:\n")[0] + "    features:\n" + feats + "\n" + \
        f"    drift: {{features: [{', '.join(names[:features])}], " + drift
    return head + "    slices:\n      - " + "\n      - ".join(kept).rstrip() + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", default=os.environ.get("SLICEWATCH_TEST_KAFKA"))
    ap.add_argument("--records", type=int, default=600_000)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--eval-records", type=int, default=360_000)
    ap.add_argument("--skip-workers", action="store_true")
    ap.add_argument("--workers-only", action="store_true", help="part 1 only")
    ap.add_argument("--checkpoint-interval", type=float, default=5.0,
                    help="the workers' checkpoint_interval in seconds (part 1; docs/scaling.md "
                         "recommends 30-60 s for workers)")
    ap.add_argument("--checkpoint-records", type=int, default=200_000,
                    help="the workers' checkpoint_records (part 1)")
    ap.add_argument("--trace", action="store_true",
                    help="run the workers through bench/scale_worker_trace.py: per worker, "
                         "wall, CPU and run-queue seconds in consume, fold, checkpoint, "
                         "rebalance (env SCALE_TRACE_STATS=MS adds librdkafka statistics)")
    ap.add_argument("--broker-pid", type=int,
                    help="the broker's process id, to print its CPU seconds in each measurement")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    topic = f"bench-scale-{uuid.uuid4().hex[:8]}"
    text = SPEC.format(bootstrap=args.bootstrap or "127.0.0.1:1", topic=topic,
                       features=FEATURES, checkpoint=tmp / "cp.db", drift="{drift}")
    t = time.perf_counter()
    profile = reference_profile(text, tmp, records=100_000)
    print(f"reference profile in {time.perf_counter() - t:.0f}s", flush=True)
    text = text.replace("{drift}", f"profile: {profile}")
    (tmp / "spec.yaml").write_text(text)
    spec = load_spec(str(tmp / "spec.yaml"))
    print(f"cores available: {sorted(os.sched_getaffinity(0))}", flush=True)

    if not args.workers_only:
        # 3. partial size
        window = make_records(600_000 // args.partitions, seed=3)  # one partition's 5m window
        every = 10_000 // args.partitions  # checkpoint_interval 5 s at 2 000 records/s
        print("partials of one partition for one 5-minute window "
              f"({len(window):,} records; 2 000 records/s over {args.partitions} partitions): "
              f"one partial for the window | the partials of checkpoints every 5 s ({every:,} "
              "records each), summed:")
        for slices, features in ((1, 20), (5, 20), (10, 8), (10, 14), (10, 20)):
            s = load_spec_text(shrunk(text, slices, features), str(tmp / "s.yaml"))
            raw, packed, total = partial_bytes(s, window, every)
            print(f"  {slices:2d} slice rules × {features:2d} features: {raw / 1e6:7.2f} MB "
                  f"encoded, {packed / 1e6:7.2f} MB compressed | {total / 1e6:7.2f} MB "
                  "compressed", flush=True)

        # 2. evaluator
        fast = make_records(args.eval_records, seed=4, rate=200.0)
        cost = evaluator_cost(spec, fast, args.partitions)
        print(f"evaluator, {args.partitions} partitions, 60k-record windows: "
              f"{cost['windows']} windows, merge {cost['merge'] * 1e3:.0f} ms/window, "
              f"close (metrics + drift) {cost['close'] * 1e3:.0f} ms/window; one daemon over "
              f"the same records: {cost['single_total']:.1f} s for {cost['single_windows']} "
              "windows (fold + close)", flush=True)
        del fast

    # 1. workers
    if args.skip_workers:
        return
    if not args.bootstrap:
        sys.exit("no broker: pass --bootstrap or source .services/env")
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    admin.create_topics([NewTopic(topic, args.partitions, 1)])[topic].result(30)
    try:
        lines = make_records(args.records)
        produce(args.bootstrap, topic, lines, args.partitions)
        print(f"produced {len(lines):,} records to {topic} ({args.partitions} partitions)",
              flush=True)
        del lines
        one, two, one_u, two_u = [], [], [], []
        print(f"workers checkpoint every {args.checkpoint_interval:g} s or "
              f"{args.checkpoint_records:,} records", flush=True)
        for rep in range(args.repeat):
            one.append(workers_rate(text, tmp, args.bootstrap, topic, args.partitions,
                                    args.records, 1, rep, args.checkpoint_interval,
                                    args.checkpoint_records, args.trace, args.broker_pid,
                                    one_u))
            print(f"run {rep + 1}: 1 worker   {one[-1]:,.0f} records/s "
                  f"(less run-queue waits: {one_u[-1]:,.0f})", flush=True)
            two.append(workers_rate(text, tmp, args.bootstrap, topic, args.partitions,
                                    args.records, 2, rep, args.checkpoint_interval,
                                    args.checkpoint_records, args.trace, args.broker_pid,
                                    two_u))
            print(f"run {rep + 1}: 2 workers  {two[-1]:,.0f} records/s "
                  f"(less run-queue waits: {two_u[-1]:,.0f})", flush=True)
        print(f"1 worker: {max(one):,.0f} records/s; 2 workers: {max(two):,.0f} records/s "
              f"(best of {args.repeat}); ratio {max(two) / max(one):.2f} (target >= 1.6); "
              "per run: " + ", ".join(f"{b / a:.2f}" for a, b in zip(one, two, strict=True)))
        print("less the time a worker's main thread waited for a CPU (other processes on its "
              f"core): ratio {max(two_u) / max(one_u):.2f}; per run: "
              + ", ".join(f"{b / a:.2f}" for a, b in zip(one_u, two_u, strict=True)))
    finally:
        admin.delete_topics([topic] + [f"bench-scale-{w}-{r}-{topic}-{s}"
                                       for w in (1, 2) for r in range(args.repeat)
                                       for s in ("partials", "worker-state", "evaluator")])




if __name__ == "__main__":
    main()
