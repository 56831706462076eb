"""Coverage of the ECE interval by window size, to choose ``MIN_ECE_RECORDS`` (issue 15).

Eight calibration designs (those of tests/unit/test_intervals_coverage.py) at each size, the
minimum switched off, ``--windows`` simulated windows per design (Monte Carlo error of a
coverage ≈ ±2·√(0.05·0.95/windows))::

    PYTHONPATH=$PWD .venv/bin/python bench/ece_min_records.py --windows 3000
"""

from __future__ import annotations

import argparse

import numpy as np

from monitor.core.metrics import intervals as iv
from tests.unit.test_intervals_coverage import _ece_windows

DESIGNS = ((0.0, 1.0), (0.05, 1.0), (0.1, 1.0), (0.25, 1.0), (0.5, 1.0), (0.0, 0.8),
           (0.0, 1.3), (-0.3, 1.2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=3000)
    ap.add_argument("--sizes", default="500,1000,2000,5000")
    args = ap.parse_args()
    iv.MIN_ECE_RECORDS = 1
    print("records  coverage per design (shift, slope): " + " ".join(map(str, DESIGNS)))
    for n in (int(x) for x in args.sizes.split(",")):
        covs = []
        for shift, slope in DESIGNS:
            count, y, s, truth = _ece_windows(n, shift, slope, args.windows,
                                              7919 * n + int(shift * 100) + int(slope * 10) + 3)
            lo, hi = iv.ece_interval(count, y, s, 0.95)
            covs.append(float(np.mean((lo <= truth) & (truth <= hi))))
        print(f"{n:7d}  " + " ".join(f"{c:.3f}" for c in covs)
              + f"   min {min(covs):.3f} max {max(covs):.3f}", flush=True)


if __name__ == "__main__":
    main()
