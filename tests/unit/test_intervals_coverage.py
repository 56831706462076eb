"""Coverage of the PR AUC and ECE intervals by simulation (issue 15 item 1, fifth pass): the
nominal 95 % ± 2 points in every design at or above the documented minimums
(``MIN_PR_POSITIVES``, ``MIN_ECE_RECORDS``), ≥ 1000 simulated windows per design, seeded and
vectorised over windows. The same check fails for the percentile bootstrap these intervals
replaced (last test).

Truths are population values on the metric's own bins: the 1024-bin average precision of
binormal scores (negatives N(0, 1), positives N(mu, 1), mapped to ``[0, 1]`` as
``Φ((x − mu/2)/2)``), and the binned ECE of each :class:`EceDesign` on a fine quantile grid
of its score distribution (the first eight: scores ``expit(N(−1, 1.5²))``, labels from
``expit(slope·logit(s) + shift)``; ``shift 0, slope 1``: calibrated, ECE = 0).

``NEW_ECE_DESIGNS`` were written after the constrained-bootstrap ECE interval and never tuned
on. The weakest sit at ≈ 0.93 (15 bins with a 0.25 logit shift, uniform scores with a 0.3
shift: upper misses, bench/RESULTS.md "#15 ECE interval, robust"); a change that moves any
design outside here is a real regression.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit, logit

from monitor.core.metrics.base import ModelColumns
from monitor.core.metrics.bootstrap import BootstrapLabel, average_precision, bootstrap_interval
from monitor.core.metrics.calibration import calibration_bin
from monitor.core.metrics.intervals import (
    MIN_ECE_RECORDS,
    MIN_PR_POSITIVES,
    average_precision_logit,
    ece_interval,
)
from monitor.core.metrics.ranking import DEFAULT_BINS

LEVEL, TOLERANCE = 0.95, 0.02
PR_WINDOWS, ECE_WINDOWS, ECE_BINS = 2000, 1000, 10


def _binormal(prev: float, mu: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Cell probabilities of negatives and positives on the 1024 bins, and the true AP."""
    x_edges = stats.norm.ppf(np.arange(DEFAULT_BINS + 1) / DEFAULT_BINS) * 2 + mu / 2
    p_neg = (1 - prev) * np.diff(stats.norm.cdf(x_edges))
    p_pos = prev * np.diff(stats.norm.cdf(x_edges - mu))
    return p_neg, p_pos, float(average_precision(p_neg[None], p_pos[None])[0])


def _pr_windows(prev: float, n: int, mu: float, windows: int, seed: int
                ) -> tuple[np.ndarray, np.ndarray, float]:
    p_neg, p_pos, truth = _binormal(prev, mu)
    rng = np.random.default_rng(seed)
    cells = rng.multinomial(n, np.concatenate([p_neg, p_pos]), size=windows)
    return cells[:, :DEFAULT_BINS], cells[:, DEFAULT_BINS:], truth


PR_DESIGNS = [(prev, n, mu) for prev, n in ((0.05, 2000), (0.1, 1000), (0.3, 1000),
                                            (0.1, 5000), (0.5, 5000))
              for mu in (0.5, 1.0, 2.0)]


@pytest.mark.parametrize(("prev", "n", "mu"), PR_DESIGNS)
def test_pr_auc_interval_coverage(prev, n, mu):
    neg, pos, truth = _pr_windows(prev, n, mu, PR_WINDOWS, int(prev * 1000 + n + mu * 7))
    assert pos.sum(axis=1).min() >= MIN_PR_POSITIVES  # every window reports an interval
    _, lo, hi = average_precision_logit(neg, pos, LEVEL)
    assert np.isfinite(lo).all() and np.isfinite(hi).all()
    cover = np.mean((lo <= truth) & (truth <= hi))
    assert cover == pytest.approx(LEVEL, abs=TOLERANCE), (prev, n, mu, truth, cover)


def test_pr_auc_interval_not_reported_below_the_minimum():
    neg, pos, _ = _pr_windows(0.02, 1000, 1.0, 200, 3)
    ap, lo, hi = average_precision_logit(neg, pos, LEVEL)
    few = pos.sum(axis=1) < MIN_PR_POSITIVES
    assert few.all() and np.isfinite(ap).all() and np.isnan(lo).all() and np.isnan(hi).all()


def _identity(s: np.ndarray) -> np.ndarray:
    return s


def _shifted(shift: float, slope: float) -> Callable[[np.ndarray], np.ndarray]:
    """``P(y = 1 | s) = expit(slope·logit(s) + shift)`` (``0, 1``: calibrated, exactly)."""
    if shift == 0 and slope == 1:
        return _identity
    return lambda s: expit(slope * logit(s) + shift)


def _bump(s: np.ndarray) -> np.ndarray:
    return s + 0.05 * ((s > 0.3) & (s <= 0.4))  # miscalibrated in one bin only


def _alternating(s: np.ndarray) -> np.ndarray:
    return s + 0.03 * np.sin(10 * np.pi * s)  # the gap changes sign from bin to bin


def _three_bins(s: np.ndarray) -> np.ndarray:
    return np.where(s < 0.3, s + 0.03, np.where(s < 0.7, s, s - 0.04))


@dataclass(frozen=True)
class EceDesign:
    """Scores from a mixture ``(weight, kind, params)`` (``logitnormal (μ, σ)``: expit of a
    normal; ``uniform (a, b)``; ``beta (a, b)``), labels from ``label(s) = P(y = 1 | s)``."""

    name: str
    scores: tuple[tuple[float, str, tuple[float, float]], ...]
    label: Callable[[np.ndarray], np.ndarray]
    bins: int = ECE_BINS


def _ppf(kind: str, params: tuple[float, float], u: np.ndarray) -> np.ndarray:
    a, b = params
    if kind == "logitnormal":
        return expit(a + b * stats.norm.ppf(u))
    if kind == "uniform":
        return a + (b - a) * u
    return stats.beta.ppf(u, a, b)


def _draw(kind: str, params: tuple[float, float], rng: np.random.Generator, size: int
          ) -> np.ndarray:
    a, b = params
    if kind == "logitnormal":
        return expit(a + b * rng.standard_normal(size))
    if kind == "uniform":
        return rng.uniform(a, b, size)
    return rng.beta(a, b, size)


def _ece_truth(design: EceDesign) -> float:
    """The population's binned ECE, on a fine quantile grid of each score component."""
    m, gap = 400_000, np.zeros(design.bins)
    for weight, kind, params in design.scores:
        grid = _ppf(kind, params, (np.arange(m) + 0.5) / m)
        gap += weight * np.bincount(calibration_bin(grid, design.bins),
                                    design.label(grid) - grid, design.bins) / m
    return float(np.abs(gap).sum())


def _ece_design_windows(design: EceDesign, n: int, windows: int, seed: int
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Per-window calibration sums ``(count, label_sum, score_sum)`` and the true ECE."""
    rng = np.random.default_rng(seed)
    weights = np.array([w for w, *_ in design.scores])
    bins, out = design.bins, []
    for start in range(0, windows, 250):  # chunks: bounded memory at 20 000 records a window
        w = min(250, windows - start)
        which = (rng.choice(len(weights), size=w * n, p=weights / weights.sum())
                 if len(weights) > 1 else np.zeros(w * n, np.int64))
        s = np.empty(w * n)
        for k, (_, kind, params) in enumerate(design.scores):
            s[which == k] = _draw(kind, params, rng, int((which == k).sum()))
        y = rng.random(w * n) < design.label(s)
        code = calibration_bin(s, bins) + bins * np.repeat(np.arange(w), n)
        out.append([np.bincount(code, weights, w * bins).reshape(w, bins)
                    for weights in (None, y, s)])
    count, label_sum, score_sum = (np.concatenate(x) for x in zip(*out, strict=True))
    return count, label_sum, score_sum, _ece_truth(design)


def _ece_windows(n: int, shift: float, slope: float, windows: int, seed: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The first eight designs: scores ``expit(N(−1, 1.5²))``, a logit shift and slope."""
    design = EceDesign(f"shift {shift} slope {slope}", BASE_SCORES, _shifted(shift, slope))
    return _ece_design_windows(design, n, windows, seed)


BASE_SCORES = ((1.0, "logitnormal", (-1.0, 1.5)),)
SHIFTS_SLOPES = ((0.0, 1.0), (0.05, 1.0), (0.1, 1.0), (0.25, 1.0), (0.5, 1.0), (0.0, 0.8),
                 (0.0, 1.3), (-0.3, 1.2))
# designs added with the constrained-bootstrap interval and never tuned on (issue 15)
NEW_ECE_DESIGNS = (
    EceDesign("uniform scores, logit shift 0.3", ((1.0, "uniform", (0.0, 1.0)),),
              _shifted(0.3, 1.0)),
    EceDesign("Beta(0.5, 0.5) scores, slope 0.8", ((1.0, "beta", (0.5, 0.5)),),
              _shifted(0.0, 0.8)),
    EceDesign("scores in three bins, gaps +0.03/0/-0.04",
              ((0.5, "uniform", (0.12, 0.18)), (0.3, "uniform", (0.52, 0.58)),
               (0.2, "uniform", (0.82, 0.88))), _three_bins),
    EceDesign("prevalence 2 %, calibrated", ((1.0, "logitnormal", (-4.2, 0.7)),), _identity),
    EceDesign("prevalence 2 %, logit shift 0.3", ((1.0, "logitnormal", (-4.2, 0.7)),),
              _shifted(0.3, 1.0)),
    EceDesign("a +0.05 bump in one bin", BASE_SCORES, _bump),
    EceDesign("gaps alternating in sign (±0.03)", ((1.0, "uniform", (0.0, 1.0)),),
              _alternating),
    EceDesign("15 bins, logit shift 0.25", BASE_SCORES, _shifted(0.25, 1.0), 15),
    EceDesign("20 bins, slope 0.8", BASE_SCORES, _shifted(0.0, 0.8), 20),
    EceDesign("20 bins, calibrated", BASE_SCORES, _identity, 20),
)
ECE_DESIGNS = [(n, shift, slope) for n in (MIN_ECE_RECORDS,) for shift, slope in SHIFTS_SLOPES]


@pytest.mark.parametrize(("n", "shift", "slope"), ECE_DESIGNS)
def test_ece_interval_coverage(n, shift, slope):
    count, y, s, truth = _ece_windows(n, shift, slope, ECE_WINDOWS,
                                      n + int(shift * 100) + int(slope * 10))
    lo, hi = ece_interval(count, y, s, LEVEL)
    assert np.isfinite(lo).all() and np.isfinite(hi).all()
    cover = np.mean((lo <= truth) & (truth <= hi))
    assert cover == pytest.approx(LEVEL, abs=TOLERANCE), (n, shift, slope, truth, cover)


@pytest.mark.parametrize(("design", "n"), [
    (d, (MIN_ECE_RECORDS, 2000, 5000)[i % 3]) for i, d in enumerate(NEW_ECE_DESIGNS)],
    ids=lambda x: getattr(x, "name", str(x)))
def test_ece_interval_coverage_on_designs_not_tuned_on(design, n):
    count, y, s, truth = _ece_design_windows(design, n, ECE_WINDOWS, 31 * n + len(design.name))
    lo, hi = ece_interval(count, y, s, LEVEL)
    assert np.isfinite(lo).all() and np.isfinite(hi).all()
    cover = np.mean((lo <= truth) & (truth <= hi))
    assert cover == pytest.approx(LEVEL, abs=TOLERANCE), (design.name, n, truth, cover)


def test_ece_interval_reaches_zero_and_is_not_reported_below_the_minimum():
    count, y, s, _ = _ece_windows(MIN_ECE_RECORDS, 0.0, 1.0, 200, 11)
    lo, _ = ece_interval(count, y, s, LEVEL)
    assert 0.85 < np.mean(lo == 0.0) < 1.0  # calibrated: the bound is 0 at ≈ the level (200)
    lo, hi = ece_interval(count[:, :] // 2, y // 2, s / 2, LEVEL)
    assert np.isnan(lo).all() and np.isnan(hi).all()


def test_the_same_check_fails_for_the_old_percentile_bootstrap():
    """The percentile bootstrap (200 Poisson replicates, 32-bin PR grid) these intervals
    replaced: ECE of a calibrated model (truth 0) is never covered, and PR AUC at 100 positives
    is below 93 %."""
    rng = np.random.default_rng(5)
    windows, n = 500, 2000  # 500 PR windows: the old bootstrap's update is the slow part
    *_, truth = _ece_windows(n, 0.0, 1.0, 1, 0)  # the truth (0) only
    neg, pos, ap_truth = _pr_windows(0.1, 1000, 1.0, windows, 1000 + 100 + 7)
    scores, labels, starts = [], [], [0]
    centres = (np.arange(DEFAULT_BINS) + 0.5) / DEFAULT_BINS
    for q, p in zip(neg, pos, strict=True):
        scores += [np.repeat(centres, p), np.repeat(centres, q)]
        labels += [np.ones(p.sum()), np.zeros(q.sum())]
        starts.append(starts[-1] + p.sum() + q.sum())
    sc, lab = np.concatenate(scores), np.concatenate(labels)
    cols = ModelColumns(sc, (sc >= 0.5).astype(float), lab, np.zeros(sc.size, np.int8),
                        key=rng.integers(0, 2**63, sc.size).astype(np.uint64))
    accs = [BootstrapLabel("binary", ("pr_auc",), 200) for _ in range(windows)]
    BootstrapLabel.update_many(cols, [(a, np.arange(starts[i], starts[i + 1]))
                                      for i, a in enumerate(accs)])
    ap = average_precision(neg, pos)
    lo, hi = np.array([bootstrap_interval(a.replicates_of()["pr_auc"], float(v), LEVEL)
                       for a, v in zip(accs, ap, strict=True)]).T
    pr_cover = np.mean((lo <= ap_truth) & (ap_truth <= hi))
    assert abs(pr_cover - LEVEL) > TOLERANCE, pr_cover
    # ECE: the calibrated design, each record its own window-level replicate weights
    s = expit(-1.0 + 1.5 * rng.standard_normal((200, n)))
    y = (rng.random((200, n)) < s).astype(float)
    flat = ModelColumns(s.ravel(), (s.ravel() >= 0.5).astype(float), y.ravel(),
                        np.zeros(s.size, np.int8),
                        key=rng.integers(0, 2**63, s.size).astype(np.uint64))
    eaccs = [BootstrapLabel("binary", ("ece",), 200, ECE_BINS) for _ in range(200)]
    BootstrapLabel.update_many(flat, [(a, np.arange(i * n, (i + 1) * n))
                                      for i, a in enumerate(eaccs)])
    e_lo = np.array([bootstrap_interval(a.replicates_of()["ece"],
                                        float(a.replicates_of()["ece"][0]), LEVEL)[0]
                     for a in eaccs])
    assert abs(truth) < 1e-12 and np.mean(e_lo <= 0.0) < LEVEL - TOLERANCE
