"""Candidate vs baseline model versions (issue 15 item 2): per slice and window, each metric's
difference ``candidate − baseline`` between two versions seen in the same window, with its
interval at the model's confidence level. Pure functions over the window's accumulators.

- **Unpaired** (the default; the versions score different records): MOVER, the method of
  variance estimates recovery (Zou & Donner 2008), from each version's own interval
  ``[l, u]`` around its estimate ``θ``::

      d = θc − θb
      lower = d − √((θc − lc)² + (ub − θb)²)      upper = d + √((uc − θc)² + (θb − lb)²)

  With Wilson intervals this is Newcombe's (1998) hybrid score interval for a difference of
  two independent proportions (his method 10); with the symmetric Wald intervals (DeLong for
  ROC AUC, normal for means) it is exactly ``d ± z·√(se_b² + se_c²)``, the difference of two
  independent DeLong AUCs / means.
- **Bootstrap** (metrics with Poisson-bootstrap replicates in both versions: with
  ``paired: true``, ``pr_auc``, ``ece``, ``accuracy``, ``precision``, ``recall``, ``f1``,
  ``roc_auc``, ``brier``, ``log_loss``; unpaired, every metric uses MOVER): the percentile
  interval of the replicate
  differences ``rc[r] − rb[r]``. A record's Poisson weights depend on its prediction id only,
  so a prediction logged under both versions (shadow traffic) weighs the same in replicate
  ``r`` of each: the differences are a *paired* bootstrap without any join, and an unpaired
  one when the ids differ.

>>> d, lo, hi = mover(0.80, 0.75, 0.84, 0.76, 0.71, 0.80)
>>> [round(float(x), 4) for x in (d, lo, hi)]
[-0.04, -0.104, 0.024]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitor.core.metrics.intervals import percentile

UNIT_METRICS = frozenset({
    "accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "ece", "brier",
    "failure_rate", "error_rate", "timeout_rate", "fallback_rate", "labelled_rate",
    "positive_rate", "label_positive_rate"})


@dataclass(frozen=True)
class VersionDiff:
    """``candidate − baseline`` of one metric of one slice in one window, with its interval
    (``method``: ``mover``, ``bootstrap`` or ``paired_bootstrap``)."""

    metric: str
    baseline: str
    candidate: str
    diff: float
    lower: float
    upper: float
    method: str

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "baseline": self.baseline, "candidate": self.candidate,
                "diff": self.diff, "lower": self.lower, "upper": self.upper,
                "method": self.method}


def mover(est_b: float, lo_b: float, hi_b: float, est_c: float, lo_c: float, hi_c: float
          ) -> tuple[float, float, float]:
    """``(diff, lower, upper)`` of ``est_c − est_b`` from two independent intervals (MOVER)."""
    d = est_c - est_b
    lower = d - np.sqrt((est_c - lo_c) ** 2 + (hi_b - est_b) ** 2)
    upper = d + np.sqrt((hi_c - est_c) ** 2 + (est_b - lo_b) ** 2)
    return d, lower, upper


def replicate_diff(reps_b: np.ndarray, reps_c: np.ndarray, est_b: float, est_c: float,
                   level: float) -> tuple[float, float, float]:
    """``(diff, lower, upper)``: the percentile interval of ``reps_c[1:] − reps_b[1:]`` moved
    by the difference of the estimates minus the difference on the bootstrap's grid
    (``reps[0]``, unit weights; 0 unless the grid is coarser than the metric's)."""
    d = est_c - est_b
    lo, hi = percentile(np.asarray(reps_c[1:]) - np.asarray(reps_b[1:]), level)
    grid = float(reps_c[0]) - float(reps_b[0])
    shift = d - grid if math.isfinite(grid) else 0.0
    return d, lo + shift, hi + shift


def replicates(accumulators: Iterable[Any]) -> dict[str, np.ndarray]:
    """Metric → its bootstrap replicates, over a group's accumulators."""
    out: dict[str, np.ndarray] = {}
    for acc in accumulators:
        out.update(getattr(acc, "replicates_of", dict)())
    return out


def _finite(*xs: float) -> bool:
    return all(isinstance(x, int | float) and math.isfinite(x) for x in xs)


def compare_metrics(baseline: str, candidate: str,
                    base: tuple[Mapping[str, float], Mapping[str, tuple[float, float]],
                                Mapping[str, np.ndarray]],
                    cand: tuple[Mapping[str, float], Mapping[str, tuple[float, float]],
                                Mapping[str, np.ndarray]],
                    level: float, paired: bool = False,
                    replicated: frozenset[str] = frozenset()) -> tuple[VersionDiff, ...]:
    """Every metric both versions have, with an interval: ``base``/``cand`` are each
    version's ``(values, intervals, replicates)``. Replicates in both: bootstrap difference;
    else intervals in both: MOVER; else left out. ``paired`` with a metric of ``replicated``
    (the spec bootstraps it) lacking replicates on a side (a window merged from partials of
    another version, docs/scaling.md "Upgrades"): left out, not MOVER (which assumes
    independent versions)."""
    (vb, ib, rb), (vc, ic, rc) = base, cand
    out = []
    for metric, est_c in vc.items():
        est_b = vb.get(metric)
        if metric == "count" or est_b is None or not _finite(est_b, est_c):
            continue
        if paired and metric in replicated and not (metric in rb and metric in rc):
            continue
        if metric in rb and metric in rc:
            d, lo, hi = replicate_diff(rb[metric], rc[metric], est_b, est_c, level)
            method = "paired_bootstrap" if paired else "bootstrap"
        elif metric in ib and metric in ic:
            d, lo, hi = mover(est_b, *ib[metric], est_c, *ic[metric])
            method = "mover"
        else:
            continue
        if not _finite(lo, hi):
            continue
        if metric in UNIT_METRICS:  # a difference of two values in [0, 1]
            lo, hi = max(lo, -1.0), min(hi, 1.0)
        out.append(VersionDiff(metric, baseline, candidate, d, lo, hi, method))
    return tuple(out)


def pairs_in_window(compare: Iterable[Any], versions: Iterable[str]) -> list[tuple[str, str, bool]]:
    """``(baseline, candidate, paired)`` pairs of the model's :class:`CompareSpec` entries
    whose versions are both in ``versions`` (a spec without candidate: every other version
    but ``__other__``), without duplicates (the first spec of a pair wins)."""
    seen = sorted(set(versions))
    out: dict[tuple[str, str], bool] = {}
    for c in compare:
        if c.baseline not in seen:
            continue
        cands = [c.candidate] if c.candidate is not None else [
            v for v in seen if v not in (c.baseline, "__other__")]
        for cand in cands:
            if cand in seen and cand != c.baseline:
                out.setdefault((c.baseline, cand), bool(c.paired))
    return [(b, c, p) for (b, c), p in out.items()]
