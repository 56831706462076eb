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
- :func:`ece_interval` — the binned expected calibration error from its per-bin sums: the
  inversion of a parametric-bootstrap test of ``ECE = θ₀`` whose bootstrap world is the
  constrained maximum-likelihood estimate of the per-bin gaps under ``θ₀`` (fixed normal
  draws: a pure function of the state); NaN below :data:`MIN_ECE_RECORDS` records.
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

stats = lazy_module("scipy.stats")
special = lazy_module("scipy.special")  # at the first interval (a window's close), not at start

DEFAULT_LEVEL = 0.95
# below these, the PR AUC / ECE intervals are not reported (NaN): their coverage was not
# within nominal ± 2 pp there (docs/analysis.md, bench/RESULTS.md #15 fifth pass)
MIN_PR_POSITIVES = 50
MIN_ECE_RECORDS = 1000
ECE_DRAWS = 2000  # normal draws per calibration bin of the ECE's parametric bootstrap
_ECE_SEED = 20261202
_ECE_CHUNK = 128  # windows per block of the ECE bootstrap (128 × 2000 × bins floats)


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
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
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


def _folded_moments(m: np.ndarray, sd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of ``Σ_b |m_b + σ_b·ε_b|`` (independent folded normals)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(sd > 0, m / np.where(sd > 0, sd, 1.0), 0.0)
    mean = sd * np.sqrt(2 / np.pi) * np.exp(-r * r / 2) + m * (1 - 2 * special.ndtr(-r))
    var = np.maximum(m * m + sd * sd - mean * mean, 0.0)
    return mean.sum(axis=-1), var.sum(axis=-1)


class _NullWorld:
    """The gap magnitudes closest to the observed ones (``Σ_b ((a_b − m_b)/σ_b)²`` least)
    under ``Σ_b m_b = θ₀``: the constrained maximum-likelihood estimate of ``|μ|`` given
    ``θ = θ₀`` (a weighted projection onto the ℓ₁ sphere)."""

    def __init__(self, a: np.ndarray, sd: np.ndarray) -> None:
        self.a, self.v = a, sd * sd
        self.total, vsum = a.sum(axis=-1), self.v.sum(axis=-1)
        self.vsum = np.where(vsum > 0, vsum, 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.where(self.v > 0, a / np.where(self.v > 0, self.v, 1.0), -np.inf)
        order = np.argsort(-t, axis=-1)
        self.t = np.take_along_axis(t, order, axis=-1)
        self.cum_a = np.cumsum(np.take_along_axis(a, order, axis=-1), axis=-1)
        self.cum_v = np.cumsum(np.take_along_axis(self.v, order, axis=-1), axis=-1)

    def __call__(self, theta: np.ndarray) -> np.ndarray:
        grow = np.maximum(theta - self.total, 0.0) / self.vsum  # θ₀ ≥ Σa: every bin grows
        with np.errstate(invalid="ignore", divide="ignore"):
            lam = (self.cum_a - theta[:, None]) / self.cum_v  # θ₀ < Σa: soft threshold λ·σ²
        active = np.maximum((lam < self.t).sum(axis=-1), 1)
        lam = np.take_along_axis(lam, active[:, None] - 1, axis=-1)[:, 0]
        shrink = np.where(theta < self.total, np.maximum(lam, 0.0), 0.0)
        return np.maximum(self.a - shrink[:, None] * self.v, 0.0) + grow[:, None] * self.v


def _lower_tail(theta: np.ndarray, scale: np.ndarray, alpha: float) -> np.ndarray:
    """The share of ``α`` in the lower tail of the test of ``θ₀``: 0 at ``θ₀ = 0`` (``θ``
    cannot go below 0), rising linearly to ``α/2`` at ``θ₀ = ½·√Σσ²`` (a unified,
    Feldman–Cousins-like transition: no empty or flip-flopping interval near 0)."""
    return alpha / 2 * np.minimum(theta / (0.5 * scale), 1.0)


class _Test:
    """The test of ``θ = θ₀`` for a block of windows: ``excess(θ₀)`` is the edge of its
    acceptance region minus ``ece`` (rising in ``θ₀``); its root is a bound."""

    def __init__(self, a: np.ndarray, sd: np.ndarray, noise: np.ndarray, alpha: float,
                 upper: bool) -> None:
        self.a, self.sd, self.noise, self.alpha, self.upper = a, sd, noise, alpha, upper
        self.ece = a.sum(axis=-1)
        self.world = _NullWorld(a, sd)
        self.scale = np.sqrt((sd * sd).sum(axis=-1)) + 1e-300
        self.ceiling = self.ece + 10 * self.scale if upper else self.ece

    def level(self, theta: np.ndarray) -> np.ndarray:
        tail = _lower_tail(theta, self.scale, self.alpha)
        return tail if self.upper else 1 - self.alpha + tail

    def approx(self, theta: np.ndarray) -> np.ndarray:
        """The folded-normal (mean ± z·sd) approximation of :meth:`excess`."""
        mean, var = _folded_moments(self.world(theta), self.sd)
        return mean + special.ndtri(self.level(theta)) * np.sqrt(var) - self.ece

    def excess(self, theta: np.ndarray) -> np.ndarray:
        """The Monte Carlo quantile (fixed draws) minus ``ece``."""
        totals = np.abs(self.noise + self.world(theta)[:, :, None]).sum(axis=1)
        totals.sort(axis=-1)
        draws = totals.shape[-1]
        pos = self.level(theta) * (draws - 1)
        i = np.minimum(pos.astype(np.int64), draws - 2)[:, None]
        below, above = (np.take_along_axis(totals, j, axis=-1)[:, 0] for j in (i, i + 1))
        return below + (pos - i[:, 0]) * (above - below) - self.ece

    def bisect(self, fn, steps: int) -> np.ndarray:
        """Bisection of ``fn`` over ``[0, ceiling]`` (the lower bound: the least ``θ₀`` with
        ``fn ≥ 0``; the upper: the greatest with ``fn ≤ 0``; 0 when there is none)."""
        lo, hi = np.zeros_like(self.ece), self.ceiling.copy()
        for _ in range(steps):
            mid = (lo + hi) / 2
            above = fn(mid) > 0
            lo, hi = np.where(above, lo, mid), np.where(above, mid, hi)
        return lo if self.upper else np.where(fn(lo) > 0, 0.0, hi)  # lo is 0 or a root

    def subset(self, rows: np.ndarray) -> _Test:
        return _Test(self.a[rows], self.sd[rows], self.noise[rows], self.alpha, self.upper)


def _ece_bound(test: _Test) -> np.ndarray:
    """The root of ``test.excess``: from the approximation's root, secant steps on the Monte
    Carlo quantile (4 evaluations); windows still off by more than 1 % of ``√Σσ²`` (steep
    spots) are bisected on the Monte Carlo quantile itself. The bound is 0 where the edge is
    above ``ece`` already at ``θ₀ = 0``."""
    x0 = test.bisect(test.approx, 40)  # cheap: bins, not draws
    h = 0.05 * test.scale
    slope = np.maximum((test.approx(x0 + h) - test.approx(x0)) / h, 0.05)
    f0 = test.excess(x0)
    best, f_best = x0, f0
    x1 = np.clip(x0 - f0 / slope, 0.0, test.ceiling)
    for step in range(3):
        f1 = test.excess(x1)
        closer = np.abs(f1) < np.abs(f_best)
        best, f_best = np.where(closer, x1, best), np.where(closer, f1, f_best)
        if step == 2:
            break
        with np.errstate(invalid="ignore", divide="ignore"):
            s = (f1 - f0) / (x1 - x0)
        s = np.where(np.isfinite(s) & (s > 0.05), s, slope)  # the edge rises with θ₀
        x0, f0 = x1, f1
        x1 = np.clip(x1 - f1 / s, 0.0, test.ceiling)
    settled = (np.abs(f_best) <= 0.01 * test.scale) | ((best == 0) & (f_best > 0))
    off = np.flatnonzero(~settled)
    if off.size:
        sub = test.subset(off)
        best[off] = sub.bisect(sub.excess, 24)
    return best


def ece_interval(count, label_sum, score_sum, level: float = DEFAULT_LEVEL
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``(lower, upper)`` of the binned ECE from per-bin counts, positives and score sums
    (``(..., bins)``, as :class:`~monitor.core.metrics.calibration.Calibration` keeps them).

    ``ece = Σ_b |g_b|``, ``g_b = (y_b − s_b)/N`` the bin's signed gap, estimates
    ``θ = Σ_b |μ_b|``, which is not regular where some ``μ_b = 0`` (``|g_b|`` is biased up by
    up to ``σ_b·√(2/π)``). Each ``g_b`` is approximately ``N(μ_b, σ_b²)`` with
    ``σ_b² = (n_b·(p̃_b(1 − p̃_b) + m_b²) − n_b²·m_b²/N)/N²`` (the multinomial variance of
    ``Σ_{i∈b}(y_i − s_i)/N``; ``m_b = g_b·N/n_b``, ``p̃_b = (y_b + s̄_b)/(n_b + 1)``).

    The interval inverts the test of ``θ = θ₀`` whose statistic is ``ece`` itself and whose
    null distribution is a parametric bootstrap at the constrained maximum-likelihood
    estimate of the gap magnitudes under ``θ = θ₀`` (:class:`_NullWorld`: the observed
    ``|g_b|`` soft-thresholded by ``λσ_b²``, or grown by it, until they sum to ``θ₀``), with
    fixed draws ``ε ~ N(0, σ²)`` (:data:`ECE_DRAWS`, a fixed seed: the interval is a pure
    function of the state, so merges and restarts give the same bounds). With ``q_p(θ₀)``
    the ``p`` quantile of ``Σ_b |m_b(θ₀) + ε_b|`` and ``α_l(θ₀)`` the lower tail's share of
    ``α`` (:func:`_lower_tail`: 0 at ``θ₀ = 0``, ``α/2`` from ``½·√Σσ²`` on)::

        lower: q_{1−α+α_l(θ₀)}(θ₀) = ece        upper: q_{α_l(θ₀)}(θ₀) = ece

    At ``θ₀ = 0`` the world is ``μ = 0`` (no nuisance) and the test one-sided, so a
    calibrated model's interval holds 0 at the nominal rate. No tuned offset; the remaining
    error is the distance between the bootstrap world and the truth (largest when a few bins
    carry all the miscalibration). Coverage by simulation: docs/analysis.md. NaN where
    ``N`` < :data:`MIN_ECE_RECORDS`.
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
    s_bar = np.where(count > 0, s / filled, 0.5)
    p_t = (y + s_bar) / (count + 1)
    m = np.where(count > 0, (y - s) / filled, 0.0)
    var = (count * (p_t * (1 - p_t) + m * m) - count * count * m * m / safe_total) / (
        safe_total * safe_total)
    sd = np.sqrt(np.maximum(var, 0.0))
    ok = total[:, 0] >= MIN_ECE_RECORDS
    lo = np.full(ok.shape, np.nan)
    hi = np.full(ok.shape, np.nan)
    draws = _ece_draws(count.shape[-1])
    for start in range(0, int(ok.sum()), _ECE_CHUNK):  # bounded memory: chunk × draws × bins
        rows = np.flatnonzero(ok)[start:start + _ECE_CHUNK]
        a, w_sd = np.abs(g[rows]), sd[rows]
        noise = draws.T[None] * w_sd[:, :, None]  # (windows, bins, draws)
        lo[rows] = _ece_bound(_Test(a, w_sd, noise, alpha, upper=False))
        hi[rows] = np.maximum(_ece_bound(_Test(a, w_sd, noise, alpha, upper=True)), lo[rows])
    return lo.reshape(shape), hi.reshape(shape)
