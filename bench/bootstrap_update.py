"""The Poisson bootstrap's batch update: per-slice ``cell_sums`` (gather, sort, weighted copy
and ``reduceat`` per slice and channel: the first implementation) against the one sparse
product of ``_Bootstrap.update_many``, on one 20 000-record batch whose records are each in
11 slices (overall + 10 rules of 5 values), 200 replicates. Interleaved, best of 5.

    PYTHONPATH=$PWD .venv/bin/python bench/bootstrap_update.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.core.metrics.base import ModelColumns
from monitor.core.metrics.bootstrap import BootstrapLabel, _weights, cell_sums

N = 20_000
RNG = np.random.default_rng(0)
Y = (RNG.random(N) < 0.3).astype(float)
S = np.clip(RNG.normal(0.35 + 0.3 * Y, 0.2), 0, 1)
COLS = ModelColumns(S, (S >= 0.5).astype(float), Y, np.zeros(N, np.int8),
                    key=RNG.integers(0, 2**63, N).astype(np.uint64))
GROUPS = [np.arange(N)]
for _ in range(10):
    v = RNG.integers(0, 5, N)
    GROUPS += [np.flatnonzero(v == k) for k in range(5)]


def per_slice(metrics: tuple[str, ...]) -> None:
    accs = [BootstrapLabel("binary", metrics, 200) for _ in GROUPS]
    w_all = _weights(COLS, 200)
    channels, cells = accs[0]._channels(COLS), accs[0]._layout()
    for acc, rows in zip(accs, GROUPS, strict=True):
        w = w_all[rows]
        for name, (codes, values) in channels.items():
            acc.sums[name] += cell_sums(w, codes[rows], None if values is None else values[rows],
                                        cells[name])


def sparse(metrics: tuple[str, ...]) -> None:
    accs = [BootstrapLabel("binary", metrics, 200) for _ in GROUPS]
    BootstrapLabel.update_many(COLS, list(zip(accs, GROUPS, strict=True)))


def main() -> None:
    _weights(COLS, 200)
    for metrics in (("pr_auc", "ece"), ("f1",),
                    ("pr_auc", "ece", "accuracy", "roc_auc", "brier", "log_loss")):
        best = {"per-slice": float("inf"), "sparse": float("inf")}
        for _ in range(5):
            for name, f in (("per-slice", per_slice), ("sparse", sparse)):
                t = time.perf_counter()
                f(metrics)
                best[name] = min(best[name], time.perf_counter() - t)
        print(f"{', '.join(metrics):<48} per-slice {best['per-slice'] / N * 1e6:6.2f} µs/rec  "
              f"sparse {best['sparse'] / N * 1e6:6.2f} µs/rec  "
              f"ratio {best['sparse'] / best['per-slice']:.2f}")


if __name__ == "__main__":
    main()
