"""Cost per record of the confidence intervals (issue 15), in-process, one run.

The spec, profile and records of ``bench/daemon_throughput.py`` (20 features, 10 slice rules
incl. a cross, every binary metric, drift per slice). Variants of the same spec, run
interleaved ``--repeat`` times:

- ``base``: ``confidence: false``;
- ``+ci``: the default intervals (analytic ones — Wilson, DeLong, normal, F1 via the Jaccard
  index, std via the fourth moment, PR AUC's logit/delta-method and ECE's parametric
  bootstrap at window close — no per-record bootstrap since #15's fifth pass);
- ``+ci-old``: as before issue 15's cost work, f1, pr_auc, ece and score_std bootstrapped (the
  registry's bootstrapped sets patched for that variant);
- ``+paired``: ``+ci`` with ``compare: {baseline: v3, paired: true}`` (the paired version
  comparison bootstraps every binary label metric);
- ``base-all`` / ``+ci-all``: the spec's metrics plus ``pr_auc`` and ``ece`` (the two
  metrics bootstrapped until #15's fifth pass), without and with intervals.

Prints, per variant, the best wall-clock and the best process CPU seconds per record and
their ratios to ``base`` (``base-all`` for the ``-all`` variants) measured in this run (CPU
time is less sensitive to other jobs on a shared machine), and the time spent inside the
interval accumulators' batch updates (the bootstrap's, and the moments' and confusion's
that carry the analytic intervals' sums) — a share of the run that other jobs inflate no
more than the rest.

    .venv/bin/python bench/analysis.py --records 100000 --repeat 5
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from daemon_throughput import full, load, make_records

from monitor.core.metrics import bootstrap, registry
from monitor.core.metrics.binary import Confusion
from monitor.core.metrics.bootstrap import _Bootstrap
from monitor.core.metrics.moments import ScoreMoments
from slices.spec import CompareSpec

OLD = {"BOOTSTRAPPED_LABEL": {"binary": ("f1", "pr_auc", "ece")},
       "BOOTSTRAPPED_PREDICTION": bootstrap.PREDICTION_METRICS}


INSIDE = {"bootstrap": 0.0, "moments+confusion": 0.0}


def _timed(cls, key: str) -> None:
    """Wrap ``cls.update_many`` to add its wall time to ``INSIDE[key]``."""
    inner = cls.__dict__["update_many"].__func__

    def update_many(cols, items):
        t = time.perf_counter()
        try:
            return inner(cols, items)
        finally:
            INSIDE[key] += time.perf_counter() - t
    cls.update_many = staticmethod(update_many)


_timed(_Bootstrap, "bootstrap")
_timed(ScoreMoments, "moments+confusion")
_timed(Confusion, "moments+confusion")


def run(spec, lines, patch: dict | None) -> tuple[float, float, dict[str, float]]:
    saved = {k: getattr(registry, k) for k in (patch or {})}
    try:
        for k, v in (patch or {}).items():
            setattr(registry, k, v)
        for k in INSIDE:
            INSIDE[k] = 0.0
        cpu = time.process_time()
        wall = full(spec, lines)[0]
        return wall, time.process_time() - cpu, dict(INSIDE)
    finally:
        for k, v in saved.items():
            setattr(registry, k, v)


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
    paired = dataclasses.replace(spec, models=tuple(
        dataclasses.replace(m, compare=(CompareSpec("v3", None, True),))
        for m in spec.models))
    every = dataclasses.replace(spec, models=tuple(
        dataclasses.replace(m, metrics=(*m.metrics, "pr_auc", "ece")) for m in spec.models))
    every_off = dataclasses.replace(every, models=tuple(
        dataclasses.replace(m, confidence_level=None) for m in every.models))
    variants = {"base": (off, None), "+ci": (spec, None), "+ci-old": (spec, OLD),
                "+paired": (paired, None), "base-all": (every_off, None),
                "+ci-all": (every, None)}
    wall = {k: float("inf") for k in variants}
    cpu = dict(wall)
    inside: dict[str, dict[str, float]] = {k: {} for k in variants}
    for _ in range(args.repeat):
        for name, (s, patch) in variants.items():
            w, c, parts = run(s, lines, patch)
            wall[name], cpu[name] = min(wall[name], w), min(cpu[name], c)
            inside[name] = {k: min(v, inside[name].get(k, v)) for k, v in parts.items()}
    n = len(lines)
    print(f"{n:,} records, window {args.window:,} records, best of {args.repeat}")
    print(f"{'':>8}  {'wall µs/rec':>11}  {'ratio':>6}  {'cpu µs/rec':>10}  {'ratio':>6}  "
          f"{'bootstrap µs/rec':>16}  {'moments+confusion µs/rec':>24}")
    for name in variants:
        ref = "base-all" if name.endswith("-all") else "base"
        print(f"{name:>8}  {wall[name] / n * 1e6:11.2f}  {wall[name] / wall[ref]:6.3f}  "
              f"{cpu[name] / n * 1e6:10.2f}  {cpu[name] / cpu[ref]:6.3f}  "
              f"{inside[name]['bootstrap'] / n * 1e6:16.2f}  "
              f"{inside[name]['moments+confusion'] / n * 1e6:24.2f}")


if __name__ == "__main__":
    main()
