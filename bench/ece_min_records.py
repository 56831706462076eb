"""Coverage of the ECE interval by window size and design, old method vs new (issue 15).

Designs: the eight of tests/unit/test_intervals_coverage.py (``expit(N(−1, 1.5²))`` scores,
a logit shift and slope) and the ten added there and never tuned on (``NEW_ECE_DESIGNS``:
uniform, Beta(½, ½) and three-bin scores, 2 % prevalence, a bump in one bin, gaps alternating
in sign, 15 and 20 bins). The minimum is switched off; ``--windows`` simulated windows per
design (Monte Carlo error of a coverage ≈ ±2·√(0.05·0.95/windows): ±0.44 pp at 10 000). The
old method (plug-in offsets ½σ / 0.3σ, until issue 15's robust pass) is kept here only to
compare in the same run. Also: CPU of ``ece_interval`` for 1000 slices × 10 bins, old vs new
alternated::

    PYTHONPATH=$PWD .venv/bin/python bench/ece_min_records.py --windows 10000 \\
        --sizes 1000,2000,5000,20000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.core.metrics import intervals as iv
from tests.unit.test_intervals_coverage import (
    BASE_SCORES,
    NEW_ECE_DESIGNS,
    SHIFTS_SLOPES,
    EceDesign,
    _ece_design_windows,
    _shifted,
)

DESIGNS = tuple(EceDesign(f"shift {a:+.2f} slope {b:.1f}", BASE_SCORES, _shifted(a, b))
                for a, b in SHIFTS_SLOPES) + NEW_ECE_DESIGNS


def old_ece_interval(count, label_sum, score_sum, level: float = 0.95):
    """The previous ``ece_interval``: plug-ins ``max(|g| − σ/2, 0)`` (lower) and ``|g| + 0.3σ``
    (upper), 0 when the test of perfect calibration does not reject."""
    alpha = 1 - level
    count, y, s = (np.asarray(x, np.float64) for x in (count, label_sum, score_sum))
    total = count.sum(axis=-1, keepdims=True)
    filled = np.maximum(count, 1.0)
    g = (y - s) / total
    ece = np.abs(g).sum(axis=-1)
    p_t = (y + np.where(count > 0, s / filled, 0.5)) / (count + 1)
    m = np.where(count > 0, (y - s) / filled, 0.0)
    var = (count * (p_t * (1 - p_t) + m * m) - count * count * m * m / total) / (total * total)
    sd = np.sqrt(np.maximum(var, 0.0))
    noise = iv._ece_draws(count.shape[-1])[None] * sd[:, None, :]

    def error(plug):
        return np.abs(plug[:, None, :] + noise).sum(axis=-1) - plug.sum(axis=-1)[:, None]

    q_hi = np.quantile(error(np.maximum(np.abs(g) - 0.5 * sd, 0.0)), 1 - alpha / 2, axis=-1)
    q_lo = np.quantile(error(np.abs(g) + 0.3 * sd), alpha / 2, axis=-1)
    null = np.quantile(error(np.zeros_like(g)), 1 - alpha, axis=-1)
    lo = np.where(ece <= null, 0.0, np.maximum(ece - q_hi, 0.0))
    return lo, np.maximum(ece - q_lo, lo)


def _chunked(fn, count, y, s, rows: int = 1000):
    parts = [fn(count[i:i + rows], y[i:i + rows], s[i:i + rows])
             for i in range(0, len(count), rows)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _cost(repeats: int = 3) -> None:
    design = DESIGNS[3]  # shift 0.25: 1000 slices × 10 bins of 1000 records
    count, y, s, _ = _ece_design_windows(design, 1000, 1000, 17)
    times: dict[str, list[float]] = {"old": [], "new": []}
    for _ in range(repeats):  # alternate old/new in the same run
        for name, fn in (("old", old_ece_interval), ("new", iv.ece_interval)):
            t = time.process_time()
            fn(count, y, s, 0.95)
            times[name].append(time.process_time() - t)
    old, new = min(times["old"]), min(times["new"])
    print(f"window close, 1000 slices × 10 bins (CPU s, best of {repeats}): old {old:.3f}  "
          f"new {new:.3f}  ratio {new / old:.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=3000)
    ap.add_argument("--sizes", default="1000,2000,5000")
    ap.add_argument("--no-old", action="store_true", help="skip the old method")
    ap.add_argument("--new-designs", action="store_true", help="only NEW_ECE_DESIGNS")
    ap.add_argument("--no-cost", action="store_true", help="skip the window-close timing")
    args = ap.parse_args()
    iv.MIN_ECE_RECORDS = 1
    if not args.no_cost:
        _cost()
    print(f"coverage over {args.windows} windows per design: new (old) "
          "[new lower misses / upper misses]")
    for n in (int(x) for x in args.sizes.split(",")):
        covs, olds = [], []
        for i, design in enumerate(DESIGNS):
            if args.new_designs and design not in NEW_ECE_DESIGNS:
                continue
            count, y, s, truth = _ece_design_windows(design, n, args.windows, 7919 * n + i + 3)
            lo, hi = _chunked(iv.ece_interval, count, y, s)
            covs.append(float(np.mean((lo <= truth) & (truth <= hi))))
            old = ""
            if not args.no_old:
                o_lo, o_hi = _chunked(old_ece_interval, count, y, s)
                olds.append(float(np.mean((o_lo <= truth) & (truth <= o_hi))))
                old = f" ({olds[-1]:.3f})"
            print(f"{n:6d}  {design.name:42s} truth {truth:.4f}  {covs[-1]:.3f}{old}  "
                  f"[{np.mean(lo > truth):.3f} / {np.mean(hi < truth):.3f}]", flush=True)
        line = f"{n:6d}  new min {min(covs):.3f} max {max(covs):.3f}"
        if olds:
            line += f"   old min {min(olds):.3f} max {max(olds):.3f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
