"""Coverage of the PR AUC and ECE intervals (issue 15, fifth pass) over more designs than
the unit test (``tests/unit/test_intervals_coverage.py``, whose simulators this reuses):
PR AUC below and at its minimum of positives, ECE at 2000, 5000 and 20 000 records.

    PYTHONPATH=$PWD .venv/bin/python bench/interval_coverage.py [--windows 1000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.core.metrics import intervals as iv
from tests.unit.test_intervals_coverage import _ece_windows, _pr_windows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=int, default=1000)
    args = ap.parse_args()
    w = args.windows
    print(f"PR AUC, logit/delta-method interval, {w} windows per design")
    for prev, n in ((0.05, 300), (0.1, 300), (0.05, 1000), (0.1, 1000), (0.3, 1000),
                    (0.05, 5000), (0.5, 5000)):
        for mu in (0.5, 1.0, 2.0):
            neg, pos, truth = _pr_windows(prev, n, mu, w, int(prev * 1000 + n + mu * 7) + 1)
            # below the minimum too: coverage of the formula over every window
            saved, iv.MIN_PR_POSITIVES = iv.MIN_PR_POSITIVES, 2
            try:
                _, lo, hi = iv.average_precision_logit(neg, pos, 0.95)
            finally:
                iv.MIN_PR_POSITIVES = saved
            cov = np.mean((lo <= truth) & (truth <= hi))
            print(f"  prev {prev:.2f} n {n:5d} mu {mu:.1f}  positives ~{pos.sum(1).mean():5.0f}"
                  f"  truth {truth:.3f}  coverage {cov:.3f}", flush=True)
    print(f"ECE, parametric bootstrap with bound plug-ins, {w} windows per design")
    for n in (2000, 5000, 20000):
        for shift, slope in ((0.0, 1.0), (0.05, 1.0), (0.1, 1.0), (0.25, 1.0), (0.5, 1.0),
                             (0.0, 0.8), (0.0, 1.3), (-0.3, 1.2)):
            count, y, s, truth = _ece_windows(n, shift, slope, w,
                                              n + int(shift * 100) + int(slope * 10) + 1)
            saved, iv.MIN_ECE_RECORDS = iv.MIN_ECE_RECORDS, 1
            try:
                lo, hi = iv.ece_interval(count, y, s, 0.95)
            finally:
                iv.MIN_ECE_RECORDS = saved
            cov = np.mean((lo <= truth) & (truth <= hi))
            print(f"  n {n:6d} shift {shift:+.2f} slope {slope:.1f}  truth {truth:.4f}  "
                  f"coverage {cov:.3f}  (lower misses {np.mean(lo > truth):.3f}, upper "
                  f"{np.mean(hi < truth):.3f})", flush=True)


if __name__ == "__main__":
    main()
