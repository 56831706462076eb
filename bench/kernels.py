"""The numpy kernels (monitor/core/kernels.py) against the Numba kernels they replaced.

    .venv/bin/python bench/kernels.py                  # 1M records, 20 numeric columns
    .venv/bin/python bench/kernels.py --rows 200000

One batch of ``--rows`` records, ``--cols`` numeric columns with 16 bucket edges each,
``--layers`` layers of slice groups (one layer: the ``overall`` group; the others: 10
disjoint slice values each). Per kernel, the median of ``--repeat`` calls; the Numba side
after a warm-up call (its compile time, paid at every start-up unless cached, printed apart).
Both sides get the same arrays and their results are checked equal.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make(rows: int, cols: int, layers: int, seed: int = 0) -> dict:
    from monitor.core.grouped import layer_arrays

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(cols, rows))
    x[rng.random(x.shape) < 0.01] = np.nan
    edges = np.sort(rng.normal(size=(cols, 16)), axis=1)
    groups = [np.arange(rows)]
    for _ in range(layers - 1):
        value = rng.integers(0, 10, rows)
        groups += [np.flatnonzero(value == v) for v in range(10)]
    layer_codes, layer_groups = layer_arrays(groups, rows)
    return {"x": x, "search": edges, "n_edges": np.full(cols, 16, dtype=np.int64),
            "offsets": np.arange(cols, dtype=np.int64) * 21, "width": cols * 21,
            "layers": (layer_codes, layer_groups), "n_groups": len(groups),
            "keys": rng.random(rows), "bar": np.full(len(groups), 0.01)}


def run_all(k, d: dict) -> dict:
    """Every kernel of module ``k`` on ``d``; the outputs and each kernel's time."""
    times, out = {}, {}
    t = time.perf_counter()
    codes = k.bucket_codes(d["x"], d["search"], d["n_edges"], d["offsets"])
    times["bucket_codes"] = time.perf_counter() - t
    g, f = d["n_groups"], d["x"].shape[0]
    ends = d["offsets"] + 17
    hist = np.zeros((g, d["width"]), dtype=np.int64)
    s1, s2 = np.zeros((g, f)), np.zeros((g, f))
    lo, hi = np.full((g, f), np.inf), np.full((g, f), -np.inf)
    t = time.perf_counter()
    k.fold_numeric(d["x"], codes, ends, np.zeros(f), *d["layers"], hist, s1, s2, lo, hi)
    times["fold_numeric"] = time.perf_counter() - t
    hist2 = np.zeros_like(hist)
    t = time.perf_counter()
    k.fold_codes(codes, *d["layers"], hist2)
    times["fold_codes"] = time.perf_counter() - t
    sums = np.zeros((g, f))
    t = time.perf_counter()
    k.fold_sums(np.nan_to_num(d["x"]), *d["layers"], sums)
    times["fold_sums"] = time.perf_counter() - t
    t = time.perf_counter()
    cand = k.reservoir_candidates(d["keys"], d["bar"], *d["layers"])
    times["reservoir_candidates"] = time.perf_counter() - t
    out.update(codes=codes, hist=hist, s1=s1, s2=s2, lo=lo, hi=hi, hist2=hist2, sums=sums,
               cand=cand)
    return {"times": times, "out": out}


def check_equal(a: dict, b: dict) -> None:
    for name in ("codes", "hist", "hist2", "lo", "hi"):
        assert np.array_equal(a[name], b[name]), name
    for name in ("s1", "s2", "sums"):
        assert np.allclose(a[name], b[name], rtol=1e-9, atol=1e-6), name
    assert all(np.array_equal(p, q) for p, q in zip(a["cand"], b["cand"], strict=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cols", type=int, default=20)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from monitor.core import kernels as numpy_kernels

    d = make(args.rows, args.cols, args.layers)
    try:
        import kernels_numba as numba_kernels  # bench-only copy of the old kernels
    except ImportError as e:
        numba_kernels = None
        print(f"numba side skipped: {e}")
    if numba_kernels is not None:
        t = time.perf_counter()
        numba_kernels.warm_up()
        print(f"numba: load/compile of the kernels (each start-up): "
              f"{time.perf_counter() - t:.2f} s")
    print(f"{args.rows:,} records x {args.cols} numeric columns, {args.layers} layers "
          f"({d['n_groups']} groups); median of {args.repeat} calls, seconds")
    sides = {"numpy": numpy_kernels} | ({"numba": numba_kernels} if numba_kernels else {})
    runs: dict[str, list[dict]] = {name: [] for name in sides}
    for _ in range(args.repeat):
        for name, k in sides.items():  # alternate, so load drifts hit both
            runs[name].append(run_all(k, d))
    if "numba" in runs:
        check_equal(runs["numpy"][0]["out"], runs["numba"][0]["out"])
    print(f"{'kernel':22} {'numpy':>8} {'numba':>8} {'numpy/numba':>12}")
    total = dict.fromkeys(sides, 0.0)
    for kernel in runs["numpy"][0]["times"]:
        med = {name: statistics.median(r["times"][kernel] for r in rs)
               for name, rs in runs.items()}
        for name in med:
            total[name] += med[name]
        nb = med.get("numba")
        print(f"{kernel:22} {med['numpy']:8.3f} "
              + (f"{nb:8.3f} {med['numpy'] / nb:12.2f}" if nb else ""))
    nb = total.get("numba")
    print(f"{'total':22} {total['numpy']:8.3f} "
          + (f"{nb:8.3f} {total['numpy'] / nb:12.2f}" if nb else ""))


if __name__ == "__main__":
    main()
