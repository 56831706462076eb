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
- :func:`average_precision_logit` — PR AUC (average precision) from per-label score
  histograms: a Wald interval on the logit scale with the delta-method (influence-function)
  standard error computed exactly from the histogram; NaN below :data:`MIN_PR_POSITIVES`
  positives or negatives.
- :func:`ece_interval` — the binned expected calibration error from its per-bin sums: a
  parametric bootstrap of the per-bin gaps (fixed normal draws: a pure function of the state)
  with bound-specific plug-ins, and a lower bound of 0 whenever the test of perfect
  calibration does not reject; NaN below :data:`MIN_ECE_RECORDS` records.
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
# below these, the PR AUC / ECE intervals are not reported (NaN): their coverage was not
# within nominal ± 2 pp there (docs/analysis.md, bench/RESULTS.md #15 fifth pass)
MIN_PR_POSITIVES = 50
MIN_ECE_RECORDS = 1000
ECE_DRAWS = 2000  # normal draws per calibration bin of the ECE's parametric bootstrap
_ECE_SEED = 20261202
# plug-in offsets (in σ_b) of the ECE bounds: lower from max(|g| − a·σ, 0), upper from |g| + b·σ
ECE_LOWER_SHRINK, ECE_UPPER_STRETCH = 0.5, 0.3


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


def average_precision_logit(neg, pos, level: float = DEFAULT_LEVEL
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ap, lower, upper)`` of the average precision from histograms ``(..., bins)`` of
    negatives and positives per score bin (increasing score order), as
    :class:`~monitor.core.metrics.ranking.ScoreHistogram` computes it.

    With ``T_b``/``A_b`` the positives/records in bins ``≥ b`` and ``P`` the positives,
    ``ap = Σ_b pos[b]·T_b/A_b / P``, a smooth function of the cell counts ``c``, homogeneous of
    degree 0. Its delta-method variance is ``Σ_c c·(∂ap/∂c)²`` (the influence of one record of
    cell ``c`` is ``n·∂ap/∂c``), with, in closed form::

        ∂ap/∂neg[k] = −Σ_{b≤k} pos[b]·T_b/A_b² / P
        ∂ap/∂pos[k] = (T_k/A_k − ap + Σ_{b≤k} pos[b]·(A_b − T_b)/A_b²) / P

    The interval is Wald on the logit scale, ``expit(logit(ap) ± z·se/(ap(1 − ap)))`` (inside
    ``(0, 1)``, skewed like the estimator near 1). NaN where ``P`` or ``N`` is below
    :data:`MIN_PR_POSITIVES` or ``ap`` is 1.
    """
    z = z_value(level)
    neg = np.asarray(neg, np.float64)
    pos = np.asarray(pos, np.float64)
    p = pos.sum(axis=-1, keepdims=True)
    n = neg.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.flip(np.cumsum(np.flip(pos, -1), -1), -1)
        a = np.flip(np.cumsum(np.flip(pos + neg, -1), -1), -1)
        a = np.where(a > 0, a, 1.0)
        prec = t / a
        ap = (pos * prec).sum(axis=-1, keepdims=True) / p
        g_neg = -np.cumsum(pos * t / (a * a), axis=-1) / p
        g_pos = (prec - ap + np.cumsum(pos * (a - t) / (a * a), axis=-1)) / p
        var = (neg * g_neg * g_neg).sum(axis=-1) + (pos * g_pos * g_pos).sum(axis=-1)
        ap = ap[..., 0]
        half = z * np.sqrt(var) / (ap * (1 - ap))
        centre = np.log(ap) - np.log1p(-ap)
        lo = 1 / (1 + np.exp(-(centre - half)))
        hi = 1 / (1 + np.exp(-(centre + half)))
    ok = (p[..., 0] >= MIN_PR_POSITIVES) & (n >= MIN_PR_POSITIVES) & (ap < 1) & (var > 0)
    return (np.where(p[..., 0] > 0, ap, np.nan), np.where(ok, lo, np.nan),
            np.where(ok, hi, np.nan))


@lru_cache(maxsize=16)
def _ece_draws(bins: int) -> np.ndarray:
    """``(ECE_DRAWS, bins)`` standard normal draws from a fixed seed (read-only, shared)."""
    g = np.random.default_rng(_ECE_SEED).standard_normal((ECE_DRAWS, bins))
    g.flags.writeable = False
    return g


def ece_interval(count, label_sum, score_sum, level: float = DEFAULT_LEVEL
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``(lower, upper)`` of the binned ECE from per-bin counts, positives and score sums
    (``(..., bins)``, as :class:`~monitor.core.metrics.calibration.Calibration` keeps them).

    ``ece = Σ_b |g_b|``, ``g_b = (y_b − s_b)/N`` the bin's signed gap, estimates
    ``θ = Σ_b |μ_b|``, which is not regular where some ``μ_b = 0`` (``|g_b|`` is biased up by
    up to ``σ_b·√(2/π)``). Each ``g_b`` is approximately ``N(μ_b, σ_b²)`` with
    ``σ_b² = (n_b·(p̃_b(1 − p̃_b) + m_b²) − n_b²·m_b²/N)/N²`` (the multinomial variance of
    ``Σ_{i∈b}(y_i − s_i)/N``; ``m_b = g_b·N/n_b``, ``p̃_b = (y_b + s̄_b)/(n_b + 1)``). With
    fixed draws ``ε ~ N(0, σ²)`` (:data:`ECE_DRAWS`, a fixed seed: the interval is a pure
    function of the state, so merges and restarts give the same bounds) and a plug-in ``m``,
    ``D(m) = Σ_b |m_b + ε_b| − Σ_b |m_b|`` is the estimator's error if the truth were ``m``.
    The bias of ``|g_b|`` falls as ``|μ_b|`` grows, so each bound takes the plug-in that
    errs on its own safe side::

        lower = ece − q_{1−α/2}(D(max(|g| − σ/2, 0)))      upper = ece − q_{α/2}(D(|g| + σ·0.3))

    and the lower bound is 0 whenever ``ece`` is below the ``level`` quantile of ``D(0)``
    (the test of perfect calibration, ``μ = 0``, does not reject), so a calibrated model's
    interval reaches 0 at the nominal rate. Coverage by simulation: docs/analysis.md. NaN
    where ``N`` < :data:`MIN_ECE_RECORDS`.
    """
    alpha = 1 - check_level(level)
    count = np.asarray(count, np.float64)
    y = np.asarray(label_sum, np.float64)
    s = np.asarray(score_sum, np.float64)
    shape = count.shape[:-1]
    count, y, s = (x.reshape(-1, x.shape[-1]) for x in (count, y, s))
    total = count.sum(axis=-1, keepdims=True)
    safe_total = np.where(total > 0, total, 1.0)
    filled = np.maximum(count, 1.0)
    g = (y - s) / safe_total
    ece = np.abs(g).sum(axis=-1)
    s_bar = np.where(count > 0, s / filled, 0.5)
    p_t = (y + s_bar) / (count + 1)
    m = np.where(count > 0, (y - s) / filled, 0.0)
    var = (count * (p_t * (1 - p_t) + m * m) - count * count * m * m / safe_total) / (
        safe_total * safe_total)
    sd = np.sqrt(np.maximum(var, 0.0))
    noise = _ece_draws(count.shape[-1])[None] * sd[:, None, :]  # (windows, draws, bins)

    def error(plug: np.ndarray) -> np.ndarray:
        return np.abs(plug[:, None, :] + noise).sum(axis=-1) - plug.sum(axis=-1)[:, None]

    shrunk = np.maximum(np.abs(g) - ECE_LOWER_SHRINK * sd, 0.0)
    q_hi = np.quantile(error(shrunk), 1 - alpha / 2, axis=-1)
    q_lo = np.quantile(error(np.abs(g) + ECE_UPPER_STRETCH * sd), alpha / 2, axis=-1)
    null = np.quantile(error(np.zeros_like(g)), 1 - alpha, axis=-1)
    lo = np.where(ece <= null, 0.0, np.maximum(ece - q_hi, 0.0))
    hi = np.maximum(ece - q_lo, lo)
    ok = total[:, 0] >= MIN_ECE_RECORDS
    lo, hi = np.where(ok, lo, np.nan), np.where(ok, hi, np.nan)
    return lo.reshape(shape), hi.reshape(shape)
