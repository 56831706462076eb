"""``slicewatch run --role worker`` with a time budget per worker (bench/scale.py --trace):
wall, CPU and run-queue seconds (``/proc/thread-self/schedstat``) spent in ``consume``,
folding, checkpointing and the rebalance callbacks, a timestamped line per checkpoint,
rebalance and slow ``consume``, and at exit the totals, on stderr (``trace …`` lines).
``SCALE_TRACE_STATS=<ms>``: librdkafka statistics at that interval (per owned partition
its fetch queue and state; the broker's requests in flight and round trip). Same arguments
as ``python -m monitor.cli``."""

from __future__ import annotations

import atexit
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.scale import kafka_roles

T0 = time.time()
spent: dict[str, float] = defaultdict(float)
counts: dict[str, int] = defaultdict(int)


def note(what: str) -> None:
    print(f"trace {time.time() - T0:8.3f} {what}", file=sys.stderr, flush=True)


def sched() -> tuple[float, float]:
    """Seconds the main thread ran and waited runnable for a CPU (/proc schedstat)."""
    run, wait, _ = Path("/proc/thread-self/schedstat").read_text().split()
    return int(run) / 1e9, int(wait) / 1e9


def timed(name: str, fn, loud: bool = False):
    def wrapper(self, *a, **kw):
        t = time.perf_counter()
        c = time.process_time()
        _r0, w0 = sched()
        try:
            return fn(self, *a, **kw)
        finally:
            dt = time.perf_counter() - t
            _r1, w1 = sched()
            spent[name] += dt
            spent[name + " cpu"] += time.process_time() - c
            spent[name + " runq"] += w1 - w0
            counts[name] += 1
            if loud:
                note(f"{name} {dt:.3f}s folds={sorted(self.folds)} records={self.records}")
    return wrapper


W = kafka_roles.Worker
W._fold = timed("fold", W._fold)
W.checkpoint = timed("checkpoint", W.checkpoint, loud=True)
W._on_assign = timed("assign", W._on_assign, loud=True)
W._on_revoke = timed("revoke", W._on_revoke, loud=True)
_run = W.run


def run(self):
    real = None

    class Timed:
        def __init__(self, c):
            self.c = c

        def consume(self, *a):
            t = time.perf_counter()
            _r0, w0 = sched()
            msgs = self.c.consume(*a)
            dt = time.perf_counter() - t
            spent["consume runq"] += sched()[1] - w0
            spent["consume"] += dt
            counts["consume"] += 1
            if not msgs:
                spent["consume empty"] += dt
                counts["consume empty"] += 1
            if dt > 0.3:
                note(f"consume {dt:.2f}s -> {len(msgs)} messages")
            return msgs

        def __getattr__(self, k):
            return getattr(self.c, k)

    from confluent_kafka import Consumer as Real

    def make(conf):
        nonlocal real
        if real is not None:  # read_latest's consumers: not the loop's
            return Real(conf)
        if os.environ.get("SCALE_TRACE_STATS"):
            conf = {**conf, "statistics.interval.ms": int(os.environ["SCALE_TRACE_STATS"]),
                    "stats_cb": stats}
        real = Timed(Real(conf))
        return real

    import confluent_kafka
    orig = confluent_kafka.Consumer
    confluent_kafka.Consumer = make
    try:
        note("run start")
        return _run(self)
    finally:
        confluent_kafka.Consumer = orig


W.run = run


def stats(text: str) -> None:
    """librdkafka statistics: per owned partition its fetch queue and fetch state; per
    broker the requests waiting and the round trip."""
    st = json.loads(text)
    parts = []
    for tname, t in st.get("topics", {}).items():
        for p, ps in t.get("partitions", {}).items():
            if p == "-1" or ps.get("fetch_state") in ("none", "stopped"):
                continue
            parts.append(f"{tname[-4:]}:{p} q={ps['fetchq_cnt']}/{ps['fetchq_size'] >> 10}k "
                         f"{ps['fetch_state']} lag={ps['consumer_lag']}")
    brokers = [f"{b['nodename']} waitresp={b['waitresp_cnt']} rtt={b['rtt']['avg'] / 1e3:.0f}ms"
               for b in st.get("brokers", {}).values() if b.get("nodeid", -1) >= 0]
    note("stats " + "; ".join(parts + brokers))


@atexit.register
def report() -> None:
    run = wait = 0.0
    for task in Path("/proc/self/task").iterdir():
        r, w, _ = (task / "schedstat").read_text().split()
        run, wait = run + int(r) / 1e9, wait + int(w) / 1e9
    r, w = sched()
    note(f"main thread: ran {r:.1f}s, runnable waiting for a CPU {w:.1f}s; all threads: "
         f"ran {run:.1f}s, waited {wait:.1f}s")
    note("stop; " + ", ".join(f"{k} {v:.2f}s/{counts.get(k, '')}"
                              for k, v in sorted(spent.items())))


if __name__ == "__main__":
    from monitor.cli import main
    sys.exit(main())
