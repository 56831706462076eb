"""Size and build time of the HTML report of a large run (issue #16).

A synthetic history of SLICES × FEATURES × WINDOWS (every slice tested on every feature in
every window, quality per feature, some drift decisions and concept-drift events) is
written, then reported. The baseline measured in the same run is reading the history alone
(``read_history``): the report's ratio to it is what drawing costs on top of parsing.

    .venv/bin/python bench/report_size.py --slices 100 --features 20 --windows 500
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from monitor.outputs.report import write_report
from monitor.outputs.report.history import read_history
from tests.unit.test_report import synthetic_history


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=100)
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--windows", type=int, default=500)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        hist, out = os.path.join(tmp, "history.jsonl"), os.path.join(tmp, "report.html")
        t = time.perf_counter()
        synthetic_history(hist, args.slices, args.features, args.windows)
        gen = time.perf_counter() - t
        t = time.perf_counter()
        read_history(hist)
        read = time.perf_counter() - t
        t = time.perf_counter()
        size = write_report(hist, out)
        build = time.perf_counter() - t
        print(f"{args.slices} slices × {args.features} features × {args.windows} windows: "
              f"history {os.path.getsize(hist) / 1e6:.1f} MB (written in {gen:.1f}s)")
        print(f"read history (baseline): {read:.1f}s; report: {build:.1f}s "
              f"(×{build / read:.1f} the baseline); report size {size / 1e6:.2f} MB "
              f"(limit 10 MB)")


if __name__ == "__main__":
    main()
