"""Drift engine benchmark: slicewatch's summaries + tests vs a plain loop over scipy.

    .venv/bin/python bench/drift.py                 # 1M rows × 20 features, 10 slices
    .venv/bin/python bench/drift.py --rows 100000   # quicker

Data (seeded, regenerated identically in each subprocess): a reference and a current window of
``--rows`` rows each, 15 numeric + 5 categorical (20 values) features, a binary score and
label, 10 slices; 3 numeric features and 1 categorical feature drift in the window.

- **slicewatch**: ``build_profile`` (overall + per slice), the window accumulated in batches
  of 10 000 rows per slice (as the daemon does), ``evaluate_drift`` over the 10 slices.
- **scipy loop**: per slice × feature on the raw arrays: ``ks_2samp`` and
  ``wasserstein_distance`` (numeric), ``chi2_contingency`` of the value counts (categorical).

Each side runs in its own subprocess; peak memory is that process's ``ru_maxrss`` (data
included) and the tracemalloc peak of the measured work alone (data excluded), for slicewatch
also per phase (profile build vs window).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

N_NUM, N_CAT, N_SLICES, N_VALUES = 15, 5, 10, 20


def make_data(rows: int, seed: int, drift: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, N_NUM)) * np.arange(1, N_NUM + 1)
    if drift:
        x[:, :3] += 0.3 * np.arange(1, 4)
    values = np.array([f"v{i}" for i in range(N_VALUES)], dtype=object)
    p = np.linspace(1, 2, N_VALUES)
    p /= p.sum()
    data = {f"num{i}": x[:, i] for i in range(N_NUM)}
    for j in range(N_CAT):
        q = p
        if drift and j == 0:  # 15 % of the mass moves to the first value
            q = 0.85 * p + 0.15 * (np.arange(N_VALUES) == 0)
        data[f"cat{j}"] = values[rng.choice(N_VALUES, rows, p=q)]
    data["score"] = rng.beta(2, 5, rows)
    data["label"] = (rng.random(rows) < data["score"]).astype(float)
    data["slice"] = np.array([f"s{i}" for i in range(N_SLICES)], dtype=object)[
        rng.integers(0, N_SLICES, rows)]
    return data


def model_spec():
    from slices.spec import DriftSpec, FeatureSpec, ModelSpec

    feats = tuple(FeatureSpec(f"num{i}") for i in range(N_NUM)) + tuple(
        FeatureSpec(f"cat{j}", "categorical") for j in range(N_CAT))
    return ModelSpec("bench", "binary", features=feats, drift=DriftSpec(enabled=True))


def run_slicewatch(ref: dict, cur: dict) -> dict:
    from monitor.core.metrics.base import ModelColumns
    from monitor.drift.decide import evaluate_drift
    from monitor.drift.profile import build_profile

    model = model_spec()
    t0 = time.perf_counter()
    profile = build_profile(model, ref, source="bench", slices=ref["slice"])
    t1 = time.perf_counter()
    peaks = {}
    if tracemalloc.is_tracing():
        peaks["profile_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.reset_peak()
    names = [f.name for f in model.features]
    windows = {f"s{i}": profile.window_summaries(seed=i) for i in range(N_SLICES)}
    rows = cur["score"].shape[0]
    for start in range(0, rows, 10_000):
        part = slice(start, start + 10_000)
        keys = cur["slice"][part]
        n = keys.shape[0]
        cols = ModelColumns(score=cur["score"][part], predicted=(cur["score"][part] >= 0.5) * 1.0,
                       label=cur["label"][part], outcome=np.zeros(n, np.int8),
                       features={k: cur[k][part] for k in names})
        for key, summaries in windows.items():
            summaries.update(cols.take(np.flatnonzero(keys == key)))
    t2 = time.perf_counter()
    decisions = evaluate_drift(profile, windows, model)
    t3 = time.perf_counter()
    if tracemalloc.is_tracing():
        peaks["window_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    state_bytes = len(json.dumps({k: v.to_state() for k, v in windows.items()}))
    drifted = sorted({d.feature for d in decisions if d.status == "drift"})
    return {"profile_s": t1 - t0, "accumulate_s": t2 - t1, "tests_s": t3 - t2,
            "total_s": t3 - t0, "tests": len(decisions), "drifted": drifted,
            "window_state_bytes": state_bytes, "profile_bytes": len(profile.to_json()),
            **peaks}


def run_scipy(ref: dict, cur: dict) -> dict:
    import pandas as pd
    from scipy import stats

    t0 = time.perf_counter()
    flagged, tests = set(), 0
    for i in range(N_SLICES):
        key = f"s{i}"
        rm, cm = ref["slice"] == key, cur["slice"] == key
        for name in [f"num{k}" for k in range(N_NUM)] + ["score"]:
            a, b = ref[name][rm], cur[name][cm]
            p = stats.ks_2samp(a, b).pvalue
            stats.wasserstein_distance(a, b)
            tests += 1
            if p < 0.05 / (N_SLICES * 21):
                flagged.add(name)
        for name in [f"cat{k}" for k in range(N_CAT)] + ["label"]:
            table = pd.concat([pd.Series(ref[name][rm]).value_counts(),
                               pd.Series(cur[name][cm]).value_counts()], axis=1).fillna(0)
            p = stats.chi2_contingency(table.to_numpy().T).pvalue
            tests += 1
            if p < 0.05 / (N_SLICES * 21):
                flagged.add(name)
    t1 = time.perf_counter()
    return {"total_s": t1 - t0, "tests": tests, "drifted": sorted(flagged)}


def child(mode: str, rows: int) -> None:
    ref, cur = make_data(rows, 1, False), make_data(rows, 2, True)
    raw = sum(v.nbytes for v in ref.values()) + sum(v.nbytes for v in cur.values())
    fn = run_slicewatch if mode == "slicewatch" else run_scipy
    out = fn(ref, cur)  # timed run
    tracemalloc.start()
    mem = fn(ref, cur)  # memory run (tracemalloc slows allocation-heavy code, so not timed)
    phases = {k: v for k, v in mem.items() if k.endswith("_peak_mb")}
    out["work_peak_mb"] = max([tracemalloc.get_traced_memory()[1] / 2**20, *phases.values()])
    out.update(phases)
    tracemalloc.stop()
    out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["raw_data_mb"] = raw / 2**20
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--child", choices=["slicewatch", "scipy"])
    args = ap.parse_args()
    if args.child:
        child(args.child, args.rows)
        return
    res = {}
    for mode in ("slicewatch", "scipy"):
        proc = subprocess.run([sys.executable, __file__, "--child", mode, "--rows",
                               str(args.rows)], capture_output=True, text=True, check=True)
        res[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    sw, sp = res["slicewatch"], res["scipy"]
    print(f"drift benchmark: {args.rows:,} reference rows + {args.rows:,} window rows, "
          f"{N_NUM} numeric + {N_CAT} categorical features, {N_SLICES} slices "
          f"(raw data in memory: {sw['raw_data_mb']:.0f} MB)")
    print(f"slicewatch  profile build      {sw['profile_s']:7.2f} s")
    print(f"slicewatch  window accumulate  {sw['accumulate_s']:7.2f} s  (batches of 10k rows)")
    print(f"slicewatch  window tests       {sw['tests_s']:7.2f} s  ({sw['tests']} decisions, "
          "BH + gate)")
    print(f"slicewatch  total              {sw['total_s']:7.2f} s  "
          f"work peak {sw['work_peak_mb']:7.1f} MB  maxrss {sw['maxrss_mb']:7.1f} MB")
    print(f"scipy loop  total              {sp['total_s']:7.2f} s  "
          f"work peak {sp['work_peak_mb']:7.1f} MB  maxrss {sp['maxrss_mb']:7.1f} MB  "
          f"({sp['tests']} tests on raw arrays)")
    print(f"slicewatch  peak by phase: profile build {sw['profile_peak_mb']:.1f} MB, "
          f"window accumulate + tests {sw['window_peak_mb']:.1f} MB (holds no raw rows); "
          "the total work peak includes serialising profile and window state to JSON")
    print(f"ratio slicewatch / scipy: time {sw['total_s'] / sp['total_s']:.2f}x, "
          f"tests only {sw['tests_s'] / sp['total_s']:.3f}x, "
          f"work peak memory {sw['work_peak_mb'] / sp['work_peak_mb']:.2f}x")
    print(f"a plain loop keeps every raw row of the window and the reference "
          f"({sw['raw_data_mb']:.0f} MB here, growing with rows); ", end="")
    print(f"state kept: window summaries {sw['window_state_bytes'] / 2**10:.0f} KiB (JSON, "
          f"10 slices), profile {sw['profile_bytes'] / 2**10:.0f} KiB")
    print(f"drifted (slicewatch): {', '.join(sw['drifted'])}")
    print(f"flagged (scipy, Bonferroni p only): {', '.join(sp['drifted'])}")


if __name__ == "__main__":
    main()
