"""Cost of slice discovery (issue 17): the daemon on one decoded stream with 10 candidate
categorical features at level 2, against the same spec without ``discovery:``, in one run;
plus the time of a window close's discovery (in the daemon: the window's and the horizon's
search; and alone, on one window's counts) and the memory of one window's counts.

    .venv/bin/python bench/discovery.py --records 400000 --per-window 50000 --repeat 5
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np

from monitor.discovery.coder import FeatureCoder
from monitor.discovery.counts import ConjunctionCounts
from monitor.discovery.search import Settings, discover
from monitor.ingest.deadletter import DeadLetter
from monitor.ingest.decode import Decoder
from monitor.runtime.daemon import Daemon
from slices.load import load_spec_text

FEATURES = [f"f{i}" for i in range(10)]
SPEC = """
models:
  - name: m
    task: binary
    window: "%d records"
    features: {%s}
    slices: [{overall: true}, {feature_keys: [f0]}, {feature_keys: [f1, f2]}]
    metrics: [accuracy, f1, roc_auc, log_loss]
%s"""


def stream(n: int, seed: int = 0) -> list[bytes]:
    import orjson
    rng = np.random.default_rng(seed)
    values = [rng.integers(0, 3 + i * 2, n) for i in range(10)]
    score = rng.random(n)
    label = (rng.random(n) < score).astype(int)
    return [orjson.dumps({"model": "m", "prediction_id": str(i), "timestamp": float(i),
                          "features": {f: f"v{int(values[k][i])}" for k, f in enumerate(FEATURES)},
                          "prediction": {"score": float(score[i])}, "label": int(label[i])})
            for i in range(n)]


def run(spec_text: str, batches: list, closes: list[float] | None = None) -> float:
    """Seconds to process ``batches``; the time of each discovery close goes to ``closes``."""
    spec = load_spec_text(spec_text)
    daemon = Daemon(spec, dead_letter=DeadLetter(None))
    for stage in daemon.discovery.values():
        stage.close = _timed(stage.close, closes if closes is not None else [])
    gc.collect()
    t0 = time.perf_counter()
    for batch in batches:
        daemon.process_batch(batch)
    daemon.flush()
    return time.perf_counter() - t0


def _timed(close, into: list[float]):
    def timed(window):
        t0 = time.perf_counter()
        out = close(window)
        into.append(time.perf_counter() - t0)
        return out
    return timed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=400_000)
    ap.add_argument("--per-window", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    features = ", ".join(f"{f}: categorical" for f in FEATURES)
    plain = SPEC % (args.per_window, features, "")
    found = SPEC % (args.per_window, features, "    discovery: {max_level: 2, horizon: 6}\n")
    lines = stream(args.records)
    decoder = Decoder(load_spec_text(plain).schema, default_model="m")
    batches = [decoder.decode_lines(lines[i:i + args.batch])[0]
               for i in range(0, len(lines), args.batch)]
    base, disc, closes = [], [], []
    for _ in range(args.repeat):  # alternate, keep the best of each
        base.append(run(plain, batches))
        disc.append(run(found, batches, closes))
    b, d = min(base), min(disc)
    n = args.records
    print(f"records {n:,}, windows of {args.per_window:,}, 10 candidate features, level 2")
    print(f"without discovery: {b / n * 1e6:6.2f} µs/record ({n / b:,.0f} rec/s)")
    print(f"with discovery:    {d / n * 1e6:6.2f} µs/record ({n / d:,.0f} rec/s)")
    print(f"ratio with/without: {d / b:.2f}x (best of {args.repeat} each; all ratios of "
          f"run i: {', '.join(f'{x / y:.2f}' for x, y in zip(disc, base, strict=True))})")
    print(f"window close in the daemon (window + horizon of 6): median "
          f"{np.median(closes) * 1e3:.1f} ms, max {max(closes) * 1e3:.1f} ms "
          f"over {len(closes)} closes")
    # one window's counts: search time and memory
    spec = load_spec_text(found).models[0]
    coder = FeatureCoder(spec.discovery.features, {}, spec.discovery.max_values)
    acc = ConjunctionCounts(coder, "misclassification", 2)
    rng = np.random.default_rng(1)
    cols = {f: rng.integers(0, 3 + i * 2, args.per_window).astype(str).astype(object)
            for i, f in enumerate(FEATURES)}
    acc.add(coder.encode(cols), (rng.random(args.per_window) < 0.1).astype(float))
    settings = Settings(spec.discovery.top_k, spec.discovery.min_support, spec.discovery.fdr,
                        spec.discovery.alpha)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        discover(acc, settings)
        times.append(time.perf_counter() - t0)
    cells = acc.layout.size
    mem = acc.n.nbytes + acc.e.nbytes
    print(f"window close (discover over {cells:,} cells): {min(times) * 1e3:.1f} ms")
    print(f"counts of one window × version: {cells:,} cells, {mem / 1024:.0f} KiB in memory, "
          f"{len(str(acc.to_state())) / 1024:.0f} KiB as state")


if __name__ == "__main__":
    main()
