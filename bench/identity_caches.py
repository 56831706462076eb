"""Is each per-batch cache worth keeping? The daemon_throughput workload (20 features, 10
slice rules, binary metrics, drift per slice) with every cache, then with one switched off,
interleaved in one run (best of ``--repeat``). Prints records/s and the ratio to "all caches"
(< 1: the cache pays). Issue #12, "Global modes and identity caches": the factorize and
layers caches it also measured were removed (bench/RESULTS.md, "#12 caches").

    .venv/bin/python bench/identity_caches.py --records 200000 --repeat 2
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from daemon_throughput import full, load
from kafka_throughput import make_records

from monitor.core.metrics.base import ModelColumns


@contextmanager
def _patched(owner: object, name: str, value: object) -> Iterator[None]:
    old = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, old)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


VARIANTS: dict[str, Callable[[], object]] = {
    "all caches": _nothing,
    "no ModelColumns.derived":
        lambda: _patched(ModelColumns, "derived",
                         lambda self, key, compute, axis=0: compute(self)),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--window", type=int, default=60_000)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    lines = make_records(args.records)
    spec = load(args.window)
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        for name, variant in VARIANTS.items():
            with variant():
                seconds = full(spec, lines)[0]
            best[name] = min(best.get(name, seconds), seconds)
    base = best["all caches"]
    print(f"{'variant':<44}  {'rec/s':>9}  {'vs all':>6}")
    for name, seconds in best.items():
        print(f"{name:<44}  {len(lines) / seconds:>9,.0f}  {base / seconds:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
