"""Is each per-batch cache worth keeping? The daemon_throughput workload (20 features, 10
slice rules, binary metrics, drift per slice) with every cache, then with one switched off,
interleaved in one run (best of ``--repeat``). Prints records/s and the ratio to "all caches"
(< 1: the cache pays). Issue #12, "Global modes and identity caches".

    .venv/bin/python bench/identity_caches.py --records 200000 --repeat 2
"""

from __future__ import annotations

import argparse
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from daemon_throughput import full, load
from kafka_throughput import make_records

import slices.assign
from monitor.core import grouped
from monitor.core.metrics.base import ModelColumns
from monitor.drift import features


class _Forgetful(OrderedDict):
    def __setitem__(self, key, value) -> None:  # remembers nothing
        pass


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


@contextmanager
def _no_layers_cache() -> Iterator[None]:
    def fresh(cols, rows_list):
        return grouped.layer_arrays(rows_list, len(cols))
    with _patched(grouped, "layers_for", fresh), _patched(features, "layers_for", fresh):
        yield


VARIANTS: dict[str, Callable[[], object]] = {
    "all caches": _nothing,
    "no factorize_once cache (slices/assign.py)":
        lambda: _patched(slices.assign, "_FACTORIZED", _Forgetful()),
    "no layers cache (core/grouped.py)": _no_layers_cache,
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
