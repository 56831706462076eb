"""Bit-for-bit A/B of the moment merges between two trees (prediction moments, drift
summaries' folds and merges) on normal and adversarial columns (±1e300, 1e200, ±1.5e308,
-0.0, NaN, ±inf, constant runs, tiny values).

    PYTHONPATH=/path/to/old .venv/bin/python bench/moments_ab.py dump /tmp/old.json
    PYTHONPATH=.            .venv/bin/python bench/moments_ab.py dump /tmp/new.json
    .venv/bin/python bench/moments_ab.py diff /tmp/old.json /tmp/new.json

``dump`` writes every state, result and interval with floats as ``float.hex``; ``diff``
prints the leaves that differ, by case.
"""

from __future__ import annotations

import collections
import itertools
import json
import sys
import warnings
from typing import Any

import numpy as np

from monitor.core.grouped import layer_arrays
from monitor.core.metrics.base import ModelColumns
from monitor.core.metrics.moments import ScoreMoments
from monitor.drift.summary import NumericSummary, fold_numeric_groups, numeric_offsets


def hexify(o: Any) -> Any:
    if isinstance(o, float | np.floating):
        return float(o).hex()
    if isinstance(o, dict):
        return {k: hexify(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [hexify(v) for v in o]
    if isinstance(o, np.ndarray):
        return hexify(o.tolist())
    return o


def datasets(rng: np.random.Generator, n: int = 3000):
    yield "normal", rng.normal(size=n)
    yield "lognormal", rng.lognormal(3, 2, size=n)
    yield "scores", rng.random(n)
    yield "shifted", rng.normal(size=n) * 1e-3 + 1e6
    yield "ints", rng.integers(0, 50, n).astype(float)
    yield "constant", np.full(n, 0.37)
    yield "zeros_negzero", np.where(rng.random(n) < .5, -0.0, 0.0)
    yield "nan_mixed", np.where(rng.random(n) < .3, np.nan, rng.normal(size=n))
    yield "inf_mixed", np.where(rng.random(n) < .05, np.inf * np.sign(rng.normal(size=n)),
                                rng.normal(size=n))
    yield "pm1e300", rng.choice([1e300, -1e300], n) * rng.random(n)
    yield "1e200", np.full(n, 1e200) * (1 + rng.random(n))
    yield "near_max", rng.choice([1.5e308, -1.5e308], n)
    yield "const_1e300", np.full(n, 1e300)
    yield "tiny", rng.normal(size=n) * 1e-300
    yield "mixed_scale", np.concatenate([rng.normal(size=n // 2), np.full(n - n // 2, 1e250)])


def score_case(x: np.ndarray, rng: np.random.Generator, task: str) -> dict:
    """Four accumulators fed in batches (``update_many``), merged, one through its state."""
    n = x.shape[0]
    accs = [ScoreMoments(task) for _ in range(4)]
    cuts = np.sort(rng.integers(0, n, 5))
    for lo, hi in itertools.pairwise(cuts.tolist()):
        xs = x[lo:hi]
        pred = (xs > 0.5).astype(float) if task == "binary" else xs
        cols = ModelColumns(xs, pred, np.full(hi - lo, np.nan), np.zeros(hi - lo, np.int8))
        grp = rng.integers(0, 4, hi - lo)
        ScoreMoments.update_many(cols, [(a, np.flatnonzero(grp == g)) for g, a in enumerate(accs)])
    m = ScoreMoments.from_state(accs[0].to_state())
    for a in accs[1:]:
        m.merge(a)
    e = ScoreMoments(task)
    e.merge(m)
    e.merge(ScoreMoments(task))
    return {"groups": [a.to_state() for a in accs],
            "merged": [m.to_state(), m.result(), m.intervals(0.95), e.to_state()]}


def numeric_case(x: np.ndarray, rng: np.random.Generator) -> dict:
    """Summaries fed in pieces (the fold), merged (``NumericSummary.merge``), and three
    groups of two columns folded together twice."""
    edges = [-1.0, 0.0, 0.5, 1.0, 10.0]
    n = x.shape[0]
    parts = []
    cuts = np.sort(rng.integers(0, n, 4))
    for lo, hi in itertools.pairwise(cuts.tolist()):
        s = NumericSummary(edges, sample_size=50, seed=1)
        for c in np.array_split(x[lo:hi], 3):
            s.update(c)
        parts.append(s)
    m = parts[0].copy()
    for p in parts[1:]:
        m.merge(p)
    e = NumericSummary(edges, sample_size=50)
    e.merge(m)
    groups = [[NumericSummary(edges, 50, seed=g), NumericSummary(edges, 50, seed=g + 9)]
              for g in range(3)]
    g = rng.integers(0, 3, n)
    xx = np.stack([x, x[::-1].copy()])
    codes = np.stack([groups[0][0].bucket_codes(xx[0]), groups[0][1].bucket_codes(xx[1])])
    codes = codes + numeric_offsets(groups[0])[:-1, None]
    layers = layer_arrays([np.flatnonzero(g == k) for k in range(3)], n)
    for _ in range(2):
        fold_numeric_groups(xx, codes, rng.random(n), layers, groups)
    return {"parts": [p.to_state() for p in parts], "merged": m.to_state(),
            "into_empty": e.to_state(), "std": m.std,
            "groups": [[s.to_state() for s in gr] for gr in groups]}


def dump(path: str) -> None:
    warnings.simplefilter("ignore")  # the old code's overflow warnings
    res = {}
    for name, x in datasets(np.random.default_rng(0)):
        for task in ("regression", "binary"):
            res[f"score/{task}/{name}"] = score_case(x, np.random.default_rng(1), task)
        res[f"numeric/{name}"] = numeric_case(x, np.random.default_rng(2))
    with open(path, "w") as f:
        json.dump(hexify(res), f, sort_keys=True)


def _walk(x: Any, y: Any, path: str):
    if isinstance(x, dict):
        for k in x:
            yield from _walk(x[k], y[k], f"{path}/{k}")
    elif isinstance(x, list):
        for i, (u, v) in enumerate(zip(x, y, strict=True)):
            yield from _walk(u, v, f"{path}[{i}]")
    elif x != y:
        yield path, x, y


def _leaves(x: Any) -> int:
    if isinstance(x, dict | list):
        return sum(_leaves(v) for v in (x.values() if isinstance(x, dict) else x))
    return 1


def diff(old_path: str, new_path: str) -> None:
    with open(old_path) as f:
        old = json.load(f)
    with open(new_path) as f:
        new = json.load(f)
    found = list(_walk(old, new, ""))
    print(f"{len(old)} cases, {_leaves(old)} leaves, {len(found)} differ")
    by_case = collections.defaultdict(list)
    for path, x, y in found:
        by_case[path.split("[")[0].rsplit("/", 1)[0]].append((path, x, y))
    for case, rows in by_case.items():
        kinds = collections.Counter(f"{x if x in ('nan', 'inf', '-inf') else 'finite'} -> "
                                    f"{y if y in ('nan', 'inf', '-inf') else 'finite'}"
                                    for _, x, y in rows)
        print(f"  {case}: {len(rows)} ({dict(kinds)}), e.g. {rows[0]}")


if __name__ == "__main__":
    {"dump": dump, "diff": diff}[sys.argv[1]](*sys.argv[2:])
