"""Confidence intervals of slice metrics: analytic where exact or standard, vectorised.

Every function takes numpy arrays (or scalars) and broadcasts, so a simulation of thousands
of windows is one call. ``level`` is the two-sided confidence level (0.95: 2.5 % each side).

- :func:`wilson` — a rate ``k / n`` (accuracy, precision, recall, failure rates …): the
  Wilson score interval (Wilson 1927), what ``scipy.stats.binomtest(k, n).proportion_ci(
  method='wilson')`` gives.
- :func:`delong_binned` — ROC AUC from per-label score histograms: DeLong, DeLong &
  Clarke-Pearson (1988) with the placement values computed per bin (ties get half credit,
  exactly as the histogram AUC does), Wald interval clipped to ``[0, 1]``.
- :func:`normal_mean` — a mean of per-record values (MAE, log loss, score mean …):
  ``mean ± z·s/√n`` with ``s`` the sample standard deviation (central limit theorem).
- :func:`percentile` — bootstrap replicates → the percentile interval.

>>> lo, hi = wilson(8, 10, 0.95)
>>> round(float(lo), 4), round(float(hi), 4)
(0.4902, 0.9433)
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from monitor.core.lazy import lazy_module
from monitor.core.metrics.errors import MetricError

stats = lazy_module("scipy.stats")  # at the first interval (a window's close), not at start

DEFAULT_LEVEL = 0.95


def check_level(level: float) -> float:
    """``level`` as a float in (0, 1), else :class:`MetricError`."""
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 1:
        raise MetricError(f"The 'level' parameter of a confidence interval must be a float in "
                          f"the range (0, 1). Got {level!r}.")
    return float(level)


def z_value(level: float) -> float:
    """The standard normal quantile of a two-sided ``level``: 1.95996… for 0.95."""
    return _z(check_level(level))


@lru_cache(maxsize=64)
def _z(level: float) -> float:
    # cached: every interval of every slice at a window's close asks for the same few levels,
    # and scipy's ppf costs ≈ 0.2 ms a call (≈ 4 % of a bench run with intervals)
    return float(stats.norm.ppf(0.5 + level / 2))


def wilson(k, n, level: float = DEFAULT_LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of the rate ``k / n``; NaN where ``n == 0``.

    ``p = k/n``, ``c = (p + z²/2n) / (1 + z²/n)``,
    ``h = z/(1 + z²/n) · √(p(1−p)/n + z²/4n²)``; the interval is ``[c − h, c + h]``.
    """
    z = z_value(level)
    k = np.asarray(k, np.float64)
    n = np.asarray(n, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z / denom * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
    hi = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    return lo, hi


def normal_mean(total, total_sq, n, level: float = DEFAULT_LEVEL
                ) -> tuple[np.ndarray, np.ndarray]:
    """Normal-approximation interval of a mean from ``Σx``, ``Σx²`` and ``n``; NaN where
    ``n < 2``.

    ``mean = Σx/n``, ``s² = (Σx² − n·mean²)/(n − 1)``, interval ``mean ± z·s/√n``.
    """
    z = z_value(level)
    total = np.asarray(total, np.float64)
    total_sq = np.asarray(total_sq, np.float64)
    n = np.asarray(n, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n
        var = np.maximum(total_sq - n * mean * mean, 0.0) / (n - 1)
        half = z * np.sqrt(var / n)
    ok = n >= 2
    return np.where(ok, mean - half, np.nan), np.where(ok, mean + half, np.nan)


def delong_binned(neg, pos, level: float = DEFAULT_LEVEL
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(auc, lower, upper)`` from histograms of negatives and positives per score bin
    (``neg``, ``pos``: ``(..., bins)``, bins in increasing score order).

    Placements: a positive in bin ``b`` beats ``V₁₀(b) = (N_<b + neg[b]/2)/N`` of the
    negatives, a negative in bin ``b`` is beaten by ``V₀₁(b) = (P_>b + pos[b]/2)/P`` of the
    positives. ``auc = mean V₁₀``; ``S₁₀``, ``S₀₁`` are the sample variances of the
    placements over positives and negatives; ``Var(auc) = S₁₀/P + S₀₁/N`` (DeLong et al.
    1988). NaN where ``P < 2`` or ``N < 2``.
    """
    z = z_value(level)
    neg = np.asarray(neg, np.float64)
    pos = np.asarray(pos, np.float64)
    p = pos.sum(axis=-1, keepdims=True)
    n = neg.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        v10 = (np.cumsum(neg, axis=-1) - neg / 2) / n
        above = p - np.cumsum(pos, axis=-1)
        v01 = (above + pos / 2) / p
        auc = (pos * v10).sum(axis=-1, keepdims=True) / p
        s10 = (pos * np.square(v10 - auc)).sum(axis=-1) / (p[..., 0] - 1)
        s01 = (neg * np.square(v01 - auc)).sum(axis=-1) / (n[..., 0] - 1)
        half = z * np.sqrt(s10 / p[..., 0] + s01 / n[..., 0])
    auc = auc[..., 0]
    ok = (p[..., 0] >= 2) & (n[..., 0] >= 2)
    return (np.where(ok, auc, np.nan), np.where(ok, np.clip(auc - half, 0.0, 1.0), np.nan),
            np.where(ok, np.clip(auc + half, 0.0, 1.0), np.nan))


def percentile(replicates, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """Percentile interval of bootstrap ``replicates`` (NaN replicates ignored; NaN when
    fewer than 10 are finite)."""
    alpha = 1 - check_level(level)
    r = np.asarray(replicates, np.float64)
    r = r[np.isfinite(r)]
    if r.shape[0] < 10:
        return float("nan"), float("nan")
    lo, hi = np.quantile(r, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)
