"""Decode benchmark: the columnar decoder vs the old per-record decoder vs ``orjson.loads``.

    .venv/bin/python bench/decode.py                # 200k records of each kind
    .venv/bin/python bench/decode.py --records 50000

Two streams, decoded in chunks of 2 000 lines (the daemon's batch size), each timed as the best
of ``--repeat`` interleaved runs in CPU time (the machine is shared; best-of-CPU-time is the
least noisy figure):

- **demo**: the demo fraud stream (``monitor.runtime.demo.demo_records``): 4 features, ~240 bytes;
- **wide**: 20 features (15 numeric, 5 categorical), ISO 8601 timestamps, ~700 bytes.

Rows: (a) ``orjson.loads`` of each line alone, (b) the old decoder (a verbatim copy below, the
baseline), (c) ``monitor.ingest.decode.Decoder.decode_lines``; then, to tell the two causes of the
speed-up apart, (a) and (b) with the garbage collector paused as (c) pauses it. Outputs of (b)
and (c) are compared before timing.
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.core.types import RecordBatch
from monitor.ingest.decode import Decoder
from monitor.runtime.demo import demo_records
from slices.spec import SchemaSpec
from tests.reference_decoder import _ReferenceDecoder as OldDecoder

CHUNK = 2000


def demo_lines(n: int) -> list[bytes]:
    per_window = 10_000
    windows = -(-n // per_window)
    recs = [r for w in demo_records(windows, per_window, start=1_785_000_000) for r in w]
    return [orjson.dumps(r) + b"\n" for r in recs[:n]]


def wide_lines(n: int, seed: int = 3) -> list[bytes]:
    rng = np.random.default_rng(seed)
    num = rng.normal(100, 30, size=(n, 15)).round(6)
    cat = rng.integers(0, 40, size=(n, 5))
    score = rng.random(n).round(5)
    start = pd.Timestamp("2026-11-28T00:00:00Z")
    stamps = (start + pd.to_timedelta(np.sort(rng.uniform(0, 3600, n)), unit="s"))
    stamps = stamps.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    out = []
    for i in range(n):
        features = {f"txn_num_{j:02d}": float(num[i, j]) for j in range(15)}
        features.update({f"txn_cat_{j}": f"value_{cat[i, j]}" for j in range(5)})
        rec = {"model": "fraud", "model_version": "v3",
               "prediction_id": f"{seed:08x}-{i:04x}-4000-8000-{i * 7919:012x}",
               "timestamp": stamps[i], "features": features,
               "prediction": {"score": float(score[i])}, "label": int(score[i] > 0.5),
               "tags": ["mobile"] if i % 3 else [], "outcome": "ok"}
        out.append(orjson.dumps(rec) + b"\n")
    return out


def gc_paused(fn: Callable[[list[bytes]], object]) -> Callable[[list[bytes]], object]:
    """``fn`` with the garbage collector paused during each call, as the new decoder does."""
    def run(chunk: list[bytes]) -> object:
        gc.disable()
        try:
            return fn(chunk)
        finally:
            gc.enable()
    return run


def best_of(fns: dict[str, Callable[[list[bytes]], object]], chunks: list[list[bytes]],
            repeat: int) -> dict[str, float]:
    """Seconds for ``fn(chunk)`` over all chunks (results dropped, as the daemon does)."""
    best = dict.fromkeys(fns, math.inf)
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.process_time()
            for chunk in chunks:
                fn(chunk)
            best[name] = min(best[name], time.process_time() - t0)
    return best


def same(a: RecordBatch, b: RecordBatch) -> bool:
    cols = ("time", "model", "version", "id", "score", "pred_class", "value", "label",
            "outcome", "tag_rows", "tag_codes")
    return (all(np.array_equal(getattr(a, c), getattr(b, c), equal_nan=getattr(a, c).dtype.kind
                               == "f") for c in cols)
            and a.tag_names == b.tag_names and a.features.keys() == b.features.keys()
            and all(np.array_equal(a.features[k], b.features[k],
                                   equal_nan=a.features[k].dtype.kind == "f")
                    for k in a.features))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"{'stream':<6} {'decoder':<24} {'records/s':>12} {'µs/record':>10} {'vs old':>7}")
    for name, make in (("demo", demo_lines), ("wide", wide_lines)):
        lines = make(args.records)
        chunks = [lines[i:i + CHUNK] for i in range(0, len(lines), CHUNK)]
        kw = {"default_model": "fraud", "known_models": ["fraud"]}
        old, new = OldDecoder(SchemaSpec(), **kw), Decoder(SchemaSpec(), **kw)
        for c in chunks[:5]:
            (a, ra), (b, rb) = old.decode_lines(c), new.decode_lines(c)
            assert same(a, b) and ra == rb, "old and new decoders disagree"
        parse = lambda c: list(map(orjson.loads, c))  # noqa: E731
        times = best_of({"(a) orjson.loads only": parse, "(b) old decoder": old.decode_lines,
                         "(c) new decoder": new.decode_lines,
                         "(a') orjson, GC paused": gc_paused(parse),
                         "(b') old, GC paused": gc_paused(old.decode_lines)},
                        chunks, args.repeat)
        size = sum(map(len, lines)) / len(lines)
        for label, dt in times.items():
            print(f"{name:<6} {label:<24} {len(lines) / dt:>12,.0f} {dt / len(lines) * 1e6:>10.2f}"
                  f" {times['(b) old decoder'] / dt:>6.1f}×")
        print(f"{name:<6} ({len(lines)} records, {size:.0f} bytes each)")


if __name__ == "__main__":
    main()
