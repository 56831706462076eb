"""Cost per record of the confidence intervals (issue 15 item 1), in-process, one run.

The spec, profile and records of ``bench/daemon_throughput.py`` (20 features, 10 slice rules
incl. a cross, every binary metric, drift per slice). Two variants of the same spec: (base)
``confidence: false``, (+ci) the default intervals (analytic ones, and the Poisson bootstrap
of f1, pr_auc, ece and score_std with 200 replicates). Runs alternate ``--repeat`` times;
prints the best seconds per record of each and the ratio measured in this run.

    .venv/bin/python bench/analysis.py --records 200000 --repeat 3
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from daemon_throughput import best_of_variants, load, make_records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--window", type=int, default=60_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    lines = make_records(args.records)
    spec = load(args.window)
    off = dataclasses.replace(spec, models=tuple(
        dataclasses.replace(m, confidence_level=None) for m in spec.models))
    variants = {"base": off, "+ci": spec}
    best_of_variants(variants, lines, args.repeat, args.window)


if __name__ == "__main__":
    main()
