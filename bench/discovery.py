"""Cost of slice discovery (issue 17): the daemon on one decoded stream with 10 candidate
categorical features at level 2, against the same spec without ``discovery:``, in one run;
plus the time of a window close's discovery (in the daemon: the window's and the horizon's
search; and alone, on one window's counts) and the memory of one window's counts.

    .venv/bin/python bench/discovery.py --records 400000 --per-window 50000 --repeat 5

Three variants, alternating: without discovery, with it, and with it but the coder
factorizing every batch's strings (as before its lookup table).
"""

from __future__ import annotations

import argparse
import gc
import time
from contextlib import contextmanager

import numpy as np

import monitor.discovery.coder as coder_mod
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


def run(spec_text: str, batches: list, closes: list[float] | None = None
        ) -> tuple[float, float]:
    """(wall, CPU) seconds to process ``batches``; each discovery close's time goes to
    ``closes``. CPU time (all the process's threads) is what other processes on a shared
    machine disturb least."""
    spec = load_spec_text(spec_text)
    daemon = Daemon(spec, dead_letter=DeadLetter(None))
    for stage in daemon.discovery.values():
        stage.close = _timed(stage.close, closes if closes is not None else [])
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    for batch in batches:
        daemon.process_batch(batch)
    daemon.flush()
    return time.perf_counter() - t0, time.process_time() - c0


def _timed(close, into: list[float]):
    def timed(window):
        t0 = time.perf_counter()
        out = close(window)
        into.append(time.perf_counter() - t0)
        return out
    return timed


def per_batch_work(batches: list, model, repeat: int) -> dict[str, float]:
    """Seconds of discovery's per-batch work over ``batches`` (codes and errors of every
    record, counts updated), best of ``repeat``: now, and as before (the coder factorizing
    every batch, :func:`_add_before`)."""
    from monitor.core.prepare import Preparer
    from monitor.discovery.errors import record_errors
    prep = Preparer(model)
    cols = [prep.columns(b) for b in batches]
    errs = [record_errors("misclassification", c)[0] for c in cols]
    spec = model.discovery
    best = {"before": float("inf"), "after": float("inf")}
    for _ in range(repeat):
        for variant in ("before", "after"):
            coder = FeatureCoder(spec.features, spec.buckets, spec.max_values)
            acc = ConjunctionCounts(coder, "misclassification", spec.max_level)
            with _factorizing() if variant == "before" else _nothing():
                t0 = time.perf_counter()
                for c, e in zip(cols, errs, strict=True):
                    codes = coder.encode({f: c.features[f] for f in spec.features})
                    (_add_before if variant == "before" else ConjunctionCounts.add)(
                        acc, codes, e)
                best[variant] = min(best[variant], time.perf_counter() - t0)
    return best


def _add_before(acc: ConjunctionCounts, codes: np.ndarray, errors: np.ndarray) -> None:
    """``ConjunctionCounts.add`` for 0/1 errors as it was: one bincount for the records and
    one for the erring records' cells."""
    lay, n = acc.layout, errors.shape[0]
    index = np.empty((len(lay.blocks), n), dtype=np.intp)
    for k, b in enumerate(lay.blocks):
        row = index[k]
        if len(b) == 2:
            np.multiply(codes[b[0]], lay.capacity[b[1]], out=row)
            row += codes[b[1]]
        else:
            row[:] = codes[b[0]]
        row += lay.offsets[k]
    acc.n += np.bincount(index.ravel(), minlength=lay.size)
    acc.e += np.bincount(index[:, errors != 0].ravel(), minlength=lay.size)
    acc.total += n
    acc.total_error += float(errors.sum())


@contextmanager
def _nothing():
    yield


@contextmanager
def _factorizing():
    """The coder as before the lookup table: every batch's strings factorized."""
    saved = coder_mod.string_table_class
    coder_mod.string_table_class = lambda: None
    try:
        yield
    finally:
        coder_mod.string_table_class = saved


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
    runs: dict[str, list[tuple[float, float]]] = {"base": [], "disc": [], "factorize": []}
    closes: list[float] = []
    for _ in range(args.repeat):  # alternate, keep the best of each
        runs["base"].append(run(plain, batches))
        runs["disc"].append(run(found, batches, closes))
        with _factorizing():
            runs["factorize"].append(run(found, batches))
    n = args.records
    print(f"records {n:,}, windows of {args.per_window:,}, 10 candidate features, level 2; "
          f"best of {args.repeat} alternating runs")
    for clock, k in (("CPU", 1), ("wall", 0)):
        best = {v: min(r[k] for r in rs) for v, rs in runs.items()}
        b, d, f = best["base"], best["disc"], best["factorize"]
        print(f"{clock:>4}: without discovery {b / n * 1e6:5.2f} µs/record, with "
              f"{d / n * 1e6:5.2f} (+{(d - b) / n * 1e6:.2f}): ratio {d / b:.2f}x; "
              f"factorizing every batch (before): {f / n * 1e6:5.2f}, ratio {f / b:.2f}x")
    print("  CPU ratio of each pair: " + ", ".join(
        f"{x[1] / y[1]:.2f}" for x, y in zip(runs["disc"], runs["base"], strict=True)))
    work = per_batch_work(batches, load_spec_text(found).models[0], args.repeat)
    print("discovery's own per-batch work (coder + counts update, best of "
          f"{args.repeat}): {work['before'] / n * 1e6:.2f} µs/record before (factorize every "
          f"batch, 2 bincounts), {work['after'] / n * 1e6:.2f} now")
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
