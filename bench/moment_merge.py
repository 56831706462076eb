"""CPU cost of the moment merges where they run per group: ``ScoreMoments.update_many`` over
many groups, ``ScoreMoments.merge``, ``NumericSummary.merge`` (rolling references, partials)
and ``fold_numeric_groups`` (the drift fold, vectorised).

Run it under two trees to compare (same interpreter, alternating)::

    PYTHONPATH=/path/to/old .venv/bin/python bench/moment_merge.py
    PYTHONPATH=.            .venv/bin/python bench/moment_merge.py

Prints CPU microseconds per call (best of 5 repeats).
"""

from __future__ import annotations

import time

import numpy as np

from monitor.core.grouped import layer_arrays
from monitor.core.metrics.base import ModelColumns
from monitor.core.metrics.moments import ScoreMoments
from monitor.drift.summary import NumericSummary, fold_numeric_groups, numeric_offsets


def best(fn, number: int) -> float:
    """Best of 5 repeats of ``number`` calls, CPU µs per call."""
    out = []
    for _ in range(5):
        t = time.process_time()
        for _ in range(number):
            fn()
        out.append((time.process_time() - t) / number * 1e6)
    return min(out)


def main() -> None:
    rng = np.random.default_rng(0)
    n, groups = 20_000, 500
    x = rng.lognormal(2, 1, n)
    cols = ModelColumns(x, x, np.full(n, np.nan), np.zeros(n, np.int8))
    g = rng.integers(0, groups, n)
    rows = [np.flatnonzero(g == k) for k in range(groups)]
    accs = [ScoreMoments("regression") for _ in range(groups)]
    items = list(zip(accs, rows, strict=True))
    ScoreMoments.update_many(cols, items)
    update = lambda: ScoreMoments.update_many(cols, items)  # noqa: E731
    print(f"ScoreMoments.update_many, {groups} groups, {n} rows: {best(update, 20):8.0f} µs")
    a, b = accs[0], accs[1]
    print(f"ScoreMoments.merge: {best(lambda: a.merge(b), 20000):8.2f} µs")
    s, t = NumericSummary(np.linspace(0, 50, 20)), NumericSummary(np.linspace(0, 50, 20))
    s.update(x[:1000])
    t.update(x[1000:2000])
    print(f"NumericSummary.merge (reservoir included): {best(lambda: s.merge(t), 2000):8.2f} µs")
    cells = [[NumericSummary(np.linspace(0, 50, 20), 100, seed=k)] for k in range(groups)]
    codes = cells[0][0].bucket_codes(x)[None, :] + numeric_offsets(cells[0])[:-1, None]
    layers = layer_arrays(rows, n)
    keys = rng.random(n)
    fold = lambda: fold_numeric_groups(x[None, :], codes, keys, layers, cells)  # noqa: E731
    print(f"fold_numeric_groups, {groups} groups, {n} rows: {best(fold, 20):8.0f} µs")


if __name__ == "__main__":
    main()
